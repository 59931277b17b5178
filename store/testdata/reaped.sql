WITH cleared AS (
    UPDATE "app"."workspaces" SET "instance_id" = NULL
    WHERE "id" = $1 AND "status" = 'removed' AND "instance_id" = $2
    RETURNING "id"::text AS id
), forgotten AS (
    DELETE FROM "leakless"."leakless_attempts" a USING cleared c
    WHERE a.host_table = $3 AND a.resource_id = c.id
)
SELECT count(*) FROM cleared