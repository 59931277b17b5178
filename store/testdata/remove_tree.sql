WITH RECURSIVE tree (id) AS (
    SELECT "id" FROM "app"."workspaces" WHERE "id" = $1
  UNION
    SELECT c."id" FROM "app"."workspaces" c JOIN tree t ON c."parent_id" = t.id
), marked AS (
    UPDATE "app"."workspaces" h SET "status" = 'removed'
    FROM tree t
    WHERE h."id" = t.id AND h."status" IS DISTINCT FROM 'removed'
)
SELECT h."id"::text, h."instance_id"::text, COALESCE(a.attempts, 0), COALESCE(a.last_error, '')
FROM tree t
JOIN "app"."workspaces" h ON h."id" = t.id
LEFT JOIN "leakless"."leakless_attempts" a
       ON a.host_table = $2 AND a.resource_id = h."id"::text AND a.instance_id = h."instance_id"
WHERE h."instance_id" IS NOT NULL AND h."instance_id" <> ''
UNION ALL
SELECT NULL, NULL, 0, '' WHERE NOT EXISTS (SELECT FROM tree)