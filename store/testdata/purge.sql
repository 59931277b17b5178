DELETE FROM "leakless"."leakless_attempts" a
WHERE a.host_table = $1 AND a.next_at <= now() AND NOT COALESCE((
        SELECT true FROM "app"."workspaces" h
        WHERE lower(h."id"::text) = lower(a.resource_id) AND h."status" = 'removed'
          AND h."id"::text = a.resource_id AND h."instance_id"::text = a.instance_id
        LIMIT 1), false)