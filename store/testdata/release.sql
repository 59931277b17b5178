UPDATE "leakless"."leakless_leases" SET expires_at = now()
WHERE name = $1 AND holder = $2 AND expires_at > now()