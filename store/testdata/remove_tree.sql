WITH RECURSIVE tree (id) AS (
    SELECT "id" FROM "app"."workspaces" WHERE "id" = $1
  UNION
    SELECT c."id" FROM "app"."workspaces" c JOIN tree t ON c."parent_id" = t.id
), locked AS (
    SELECT h."id" AS id, h."instance_id" AS instance FROM "app"."workspaces" h
    WHERE h."id" IN (SELECT id FROM tree)
    FOR UPDATE
), marked AS (
    UPDATE "app"."workspaces" h SET "status" = 'removed'
    FROM locked l
    WHERE h."id" = l.id AND h."status" IS DISTINCT FROM 'removed'
), deferred AS (
    INSERT INTO "leakless"."leakless_attempts" AS a (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at)
    SELECT $2::text, l.id::text, l.instance::text, 0, '', '-infinity', now() + $3::bigint * interval '1 microsecond'
    FROM locked l
    WHERE l.instance IS NOT NULL AND l.instance <> ''
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
)
SELECT l.id::text, l.instance::text, COALESCE(a.attempts, 0), COALESCE(a.last_error, ''),
       CASE WHEN a.not_found_since IS NULL THEN 0
       ELSE GREATEST((extract(epoch FROM now() - a.not_found_since) * 1000000)::bigint, 1) END
FROM locked l
LEFT JOIN "leakless"."leakless_attempts" a
       ON a.host_table = $2 AND a.resource_id = l.id::text AND a.instance_id = l.instance