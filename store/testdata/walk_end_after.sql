SELECT h."id"::text FROM "app"."workspaces" h
WHERE h."status" = 'removed' AND h."instance_id" IS NOT NULL AND h."instance_id" <> ''
  AND h."id" > $2
ORDER BY h."id" OFFSET $1 - 1 LIMIT 1