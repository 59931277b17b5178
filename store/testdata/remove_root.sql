WITH tree (id) AS (
    SELECT "id" FROM "workspaces" WHERE "id" = $1
), locked AS (
    SELECT h."id" AS id, h."instance_id" AS instance FROM "workspaces" h
    WHERE h."id" IN (SELECT id FROM tree)
    FOR UPDATE
), marked AS (
    UPDATE "workspaces" h SET "status" = 'removed'
    FROM locked l
    WHERE h."id" = l.id AND h."status" IS DISTINCT FROM 'removed'
)
SELECT l.id::text, l.instance::text, COALESCE(a.attempts, 0), COALESCE(a.last_error, ''),
       CASE WHEN a.not_found_since IS NULL THEN 0
       ELSE GREATEST((extract(epoch FROM now() - a.not_found_since) * 1000000)::bigint, 1) END
FROM locked l
LEFT JOIN "leakless_attempts" a
       ON a.host_table = $2 AND a.resource_id = l.id::text AND a.instance_id = l.instance