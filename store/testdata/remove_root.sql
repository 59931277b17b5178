WITH tree (id) AS (
    SELECT "id" FROM "workspaces" WHERE "id" = $1
), marked AS (
    UPDATE "workspaces" h SET "status" = 'removed'
    FROM tree t
    WHERE h."id" = t.id AND h."status" IS DISTINCT FROM 'removed'
)
SELECT h."id"::text, h."instance_id"::text, COALESCE(a.attempts, 0), COALESCE(a.last_error, '')
FROM tree t
JOIN "workspaces" h ON h."id" = t.id
LEFT JOIN "leakless_attempts" a
       ON a.host_table = $2 AND a.resource_id = h."id"::text AND a.instance_id = h."instance_id"
WHERE h."instance_id" IS NOT NULL AND h."instance_id" <> ''
UNION ALL
SELECT NULL, NULL, 0, '' WHERE NOT EXISTS (SELECT FROM tree)