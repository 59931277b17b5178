WITH cleared AS (
    UPDATE "app"."workspaces" SET "instance_id" = CASE WHEN (
        SELECT attnotnull FROM pg_catalog.pg_attribute
        WHERE attrelid = to_regclass($4::text) AND attname = $5::text
    ) THEN '' END
    WHERE "id" = $1 AND "status" = 'removed' AND "instance_id" = $2
    RETURNING "id"::text AS id
), forgotten AS (
    DELETE FROM "leakless"."leakless_attempts" a USING cleared c
    WHERE a.host_table = $3 AND a.resource_id = c.id
)
SELECT count(*) FROM cleared