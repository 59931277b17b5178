SELECT 'provisioning', r.id, NULL::timestamptz FROM unnest($1::text[]) AS r (id)
WHERE EXISTS (
    SELECT FROM "app"."workspaces" h
    WHERE h."status" IS DISTINCT FROM 'removed' AND (h."instance_id" IS NULL OR h."instance_id" = '')
      AND lower(h."id"::text) = lower(r.id)
)
UNION ALL
SELECT 'removed', r.id, NULL FROM unnest($1::text[]) AS r (id)
WHERE EXISTS (
    SELECT FROM "app"."workspaces" h
    WHERE h."status" = 'removed' AND lower(h."id"::text) = lower(r.id)
)
UNION ALL
SELECT 'stopping', r.id, NULL FROM unnest($1::text[]) AS r (id)
WHERE EXISTS (
    SELECT FROM "app"."workspaces" h
    WHERE h."status" = 'removed' AND h."instance_id" IS NOT NULL AND h."instance_id" <> ''
      AND lower(h."id"::text) = lower(r.id)
      AND NOT EXISTS (
          SELECT FROM "leakless"."leakless_attempts" a
          WHERE a.host_table = $2 AND a.resource_id = h."id"::text AND a.instance_id = h."instance_id"::text AND a.permanent
      )
)
UNION ALL
SELECT 'now', NULL, now()