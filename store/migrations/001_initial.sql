-- The schema the unversioned Migrate of earlier releases created, and
-- brings an older one up to date: every statement is idempotent, so a
-- database made by such a release takes this version as it is.

-- Per-row attempt state, keyed by the host table's configured name and
-- the row's id.
CREATE TABLE IF NOT EXISTS {{attempts}} (
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

-- Columns added since the first release, for a table created by an older
-- Migrate. not_found_since: since when every recorded attempt on the
-- instance has been answered NotFound; NULL when the last was not.
ALTER TABLE {{attempts}}
    ADD COLUMN IF NOT EXISTS not_found_since timestamptz;

-- The leader leases.
CREATE TABLE IF NOT EXISTS {{leases}} (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    term       bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Serves Pending: only removed rows still holding an instance are in it,
-- so it stays tiny however large the host's history grows. Its predicate
-- excludes '' as well as NULL, or on a host whose instance column is
-- NOT NULL DEFAULT '' every removed row would be in it.
CREATE INDEX IF NOT EXISTS {{pending_index}}
    ON {{table}} ({{id}}, {{instance}})
    WHERE {{status}} = {{removed}} AND {{instance}} IS NOT NULL AND {{instance}} <> '';

-- The first release's pending index, whose predicate let '' in; dropped
-- once the one above exists.
DROP INDEX IF EXISTS {{old_pending_index}};

-- Serves Known's provisioning check: live rows that hold no instance yet.
-- Its predicate is repeated verbatim in resourcesSQL.
CREATE INDEX IF NOT EXISTS {{provisioning_index}}
    ON {{table}} ({{id}})
    WHERE {{status}} IS DISTINCT FROM {{removed}} AND ({{instance}} IS NULL OR {{instance}} = '');

-- Serves Known's removed check: removed rows by their id's lower-cased
-- text, the form resourcesSQL compares. It holds the table's whole removed
-- history, but a tag is then one index probe instead of a read of every
-- removed row (a third of a second on a million rows).
CREATE INDEX IF NOT EXISTS {{removed_index}}
    ON {{table}} (lower({{id}}::text))
    WHERE {{status}} = {{removed}};

-- A record written before every record had a due time was due at once.
UPDATE {{attempts}} SET next_at = last_at WHERE next_at IS NULL;

-- Serve Pending's due rows: the ones never attempted (whose only record is
-- a grace) and the ones that failed, each in due order, so a page is read
-- off the front of an index however many rows are backing off. Every
-- pending row that has a record has a due time. The index carries
-- Pending's whole ORDER BY: a page's failures (a tree's graces) share one
-- now(), and without resource_id every row of such a group was read and
-- sorted before the first was returned.
CREATE INDEX IF NOT EXISTS leakless_attempts_untried
    ON {{attempts}} (host_table, next_at, resource_id) WHERE attempts = 0;

CREATE INDEX IF NOT EXISTS leakless_attempts_tried
    ON {{attempts}} (host_table, next_at, resource_id) WHERE attempts > 0;
