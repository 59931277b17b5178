-- store:app.workspaces version 1: initial

CREATE SCHEMA IF NOT EXISTS "leakless";

CREATE TABLE IF NOT EXISTS "leakless"."leakless_migrations" (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
);

CREATE TABLE IF NOT EXISTS "leakless"."leakless_attempts" (
    host_table      text        NOT NULL,
    resource_id     text        NOT NULL,
    instance_id     text        NOT NULL,
    attempts        integer     NOT NULL,
    last_error      text        NOT NULL,
    last_at         timestamptz NOT NULL,
    next_at         timestamptz,
    not_found_since timestamptz,
    PRIMARY KEY (host_table, resource_id)
);

ALTER TABLE "leakless"."leakless_attempts"
    ADD COLUMN IF NOT EXISTS not_found_since timestamptz;

CREATE TABLE IF NOT EXISTS "leakless"."leakless_leases" (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    term       bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS "leakless_unreaped_workspaces"
    ON "app"."workspaces" ("id", "instance_id")
    WHERE "status" = 'removed' AND "instance_id" IS NOT NULL AND "instance_id" <> '';

DROP INDEX IF EXISTS "app"."leakless_pending_workspaces";

CREATE INDEX IF NOT EXISTS "leakless_provisioning_workspaces"
    ON "app"."workspaces" ("id")
    WHERE "status" IS DISTINCT FROM 'removed' AND ("instance_id" IS NULL OR "instance_id" = '');

CREATE INDEX IF NOT EXISTS "leakless_removed_workspaces"
    ON "app"."workspaces" (lower("id"::text))
    WHERE "status" = 'removed';

UPDATE "leakless"."leakless_attempts" SET next_at = last_at WHERE next_at IS NULL;

CREATE INDEX IF NOT EXISTS leakless_attempts_untried
    ON "leakless"."leakless_attempts" (host_table, next_at, resource_id) WHERE attempts = 0;

CREATE INDEX IF NOT EXISTS leakless_attempts_tried
    ON "leakless"."leakless_attempts" (host_table, next_at, resource_id) WHERE attempts > 0;

INSERT INTO "leakless"."leakless_migrations" (component, version, name) VALUES ('store:app.workspaces', 1, 'initial') ON CONFLICT (component, version) DO NOTHING;

-- store:app.workspaces version 2: operator_state

ALTER TABLE "leakless"."leakless_attempts"
    ADD COLUMN IF NOT EXISTS first_at        timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS permanent       boolean     NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz;

INSERT INTO "leakless"."leakless_migrations" (component, version, name) VALUES ('store:app.workspaces', 2, 'operator_state') ON CONFLICT (component, version) DO NOTHING;
