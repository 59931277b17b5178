(SELECT a.resource_id, a.instance_id, a.attempts, a.last_error,
        CASE WHEN a.not_found_since IS NULL THEN 0
       ELSE GREATEST((extract(epoch FROM now() - a.not_found_since) * 1000000)::bigint, 1) END
    FROM "leakless"."leakless_attempts" a
    WHERE a.host_table = $1 AND a.attempts = 0 AND a.next_at <= now()
      AND COALESCE((
        SELECT true FROM "app"."workspaces" h
        WHERE lower(h."id"::text) = lower(a.resource_id) AND h."status" = 'removed'
          AND h."id"::text = a.resource_id AND h."instance_id"::text = a.instance_id
        LIMIT 1), false)
    ORDER BY a.next_at, a.resource_id
    LIMIT $2)
UNION ALL
(SELECT a.resource_id, a.instance_id, a.attempts, a.last_error,
        CASE WHEN a.not_found_since IS NULL THEN 0
       ELSE GREATEST((extract(epoch FROM now() - a.not_found_since) * 1000000)::bigint, 1) END
    FROM "leakless"."leakless_attempts" a
    WHERE a.host_table = $1 AND a.attempts > 0 AND a.next_at <= now()
      AND COALESCE((
        SELECT true FROM "app"."workspaces" h
        WHERE lower(h."id"::text) = lower(a.resource_id) AND h."status" = 'removed'
          AND h."id"::text = a.resource_id AND h."instance_id"::text = a.instance_id
        LIMIT 1), false)
    ORDER BY a.next_at, a.resource_id
    LIMIT $2)