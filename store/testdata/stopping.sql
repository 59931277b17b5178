INSERT INTO "leakless"."leakless_attempts" AS a (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at)
SELECT $1::text, h."id"::text, h."instance_id"::text, 0, '', '-infinity', now() + $4::bigint * interval '1 microsecond'
FROM "app"."workspaces" h WHERE h."id" = $2 AND h."instance_id" = $3
ON CONFLICT (host_table, resource_id) DO UPDATE SET
    next_at         = EXCLUDED.next_at,
    attempts        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.attempts ELSE 0 END,
    last_error      = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.last_error ELSE '' END,
    last_at         = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.last_at ELSE EXCLUDED.last_at END,
    not_found_since = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.not_found_since END,
    permanent       = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.permanent ELSE false END,
    first_at        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.first_at ELSE EXCLUDED.first_at END,
    acknowledged_at = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.acknowledged_at END,
    instance_id     = EXCLUDED.instance_id
WHERE a.instance_id <> EXCLUDED.instance_id OR a.next_at IS NULL OR a.next_at < EXCLUDED.next_at