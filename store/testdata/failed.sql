INSERT INTO "leakless"."leakless_attempts" AS a (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at, not_found_since)
SELECT $1::text, h."id"::text, $3::text, 1, $4::text, now(),
       CASE WHEN $5::bigint > 0 THEN now() + $5::bigint * interval '1 microsecond' END,
       CASE WHEN $6::boolean THEN now() END
FROM "app"."workspaces" h WHERE h."id" = $2
ON CONFLICT (host_table, resource_id) DO UPDATE SET
    attempts        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.attempts + 1 ELSE 1 END,
    instance_id     = EXCLUDED.instance_id,
    last_error      = EXCLUDED.last_error,
    last_at         = EXCLUDED.last_at,
    next_at         = EXCLUDED.next_at,
    not_found_since = CASE WHEN a.instance_id = EXCLUDED.instance_id AND EXCLUDED.not_found_since IS NOT NULL
                           THEN COALESCE(a.not_found_since, EXCLUDED.not_found_since)
                           ELSE EXCLUDED.not_found_since END