WITH input (id, instance) AS (
    SELECT * FROM unnest($1::text[], $2::text[])
), cleared AS (
    UPDATE "app"."workspaces" h SET "instance_id" = CASE WHEN (
        SELECT attnotnull FROM pg_catalog.pg_attribute
        WHERE attrelid = to_regclass($4::text) AND attname = $5::text
    ) THEN '' END
    FROM input i
    WHERE lower(h."id"::text) = lower(i.id) AND h."id"::text = i.id
      AND h."status" = 'removed' AND h."instance_id"::text = i.instance
    RETURNING h."id"::text AS id
), forgotten AS (
    DELETE FROM "leakless"."leakless_attempts" a USING cleared c
    WHERE a.host_table = $3 AND a.resource_id = c.id
)
SELECT id FROM cleared