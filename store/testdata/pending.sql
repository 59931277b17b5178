SELECT h."id"::text, h."instance_id"::text, COALESCE(a.attempts, 0), COALESCE(a.last_error, ''),
       CASE WHEN a.not_found_since IS NULL THEN 0
       ELSE GREATEST((extract(epoch FROM now() - a.not_found_since) * 1000000)::bigint, 1) END
FROM "app"."workspaces" h
LEFT JOIN "leakless"."leakless_attempts" a
       ON a.host_table = $1 AND a.resource_id = h."id"::text AND a.instance_id = h."instance_id"
WHERE h."status" = 'removed' AND h."instance_id" IS NOT NULL AND h."instance_id" <> ''
  AND (a.next_at IS NULL OR a.next_at <= now())
ORDER BY COALESCE(a.last_at, '-infinity'), h."id"
LIMIT $2