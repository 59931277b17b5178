INSERT INTO "leakless"."leakless_attempts" AS a (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at, not_found_since, permanent)
SELECT $1::text, h."id"::text, i.instance, 1, i.last_error, now(),
       now() + GREATEST(i.delay, 0) * interval '1 microsecond',
       CASE WHEN i.not_found THEN now() END, i.permanent
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::boolean[], $7::boolean[]) AS i (id, instance, last_error, delay, not_found, permanent)
JOIN "app"."workspaces" h ON lower(h."id"::text) = lower(i.id) AND h."id"::text = i.id AND h."status" = 'removed'
ON CONFLICT (host_table, resource_id) DO UPDATE SET
    attempts        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.attempts + 1 ELSE 1 END,
    instance_id     = EXCLUDED.instance_id,
    last_error      = EXCLUDED.last_error,
    last_at         = EXCLUDED.last_at,
    next_at         = CASE WHEN a.instance_id = EXCLUDED.instance_id AND a.acknowledged_at IS NOT NULL
                           THEN a.next_at ELSE EXCLUDED.next_at END,
    not_found_since = CASE WHEN a.instance_id = EXCLUDED.instance_id AND EXCLUDED.not_found_since IS NOT NULL
                           THEN COALESCE(a.not_found_since, EXCLUDED.not_found_since)
                           ELSE EXCLUDED.not_found_since END,
    permanent       = EXCLUDED.permanent,
    first_at        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.first_at ELSE EXCLUDED.first_at END,
    acknowledged_at = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.acknowledged_at END