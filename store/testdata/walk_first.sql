SELECT s.id::text, s.instance::text FROM (
    SELECT h."id" AS id, h."instance_id" AS instance FROM "app"."workspaces" h
    WHERE h."status" = 'removed' AND h."instance_id" IS NOT NULL AND h."instance_id" <> ''
    ORDER BY h."id"
    LIMIT $3
) s
WHERE NOT COALESCE((
    SELECT true FROM "leakless"."leakless_attempts" a
    WHERE a.host_table = $1 AND a.resource_id = s.id::text AND a.instance_id = s.instance::text
    LIMIT 1), false)
ORDER BY s.id
LIMIT $2