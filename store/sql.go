package store

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Every statement the Postgres store sends, as templates. {{...}} names an
// identifier quoted by Table.quote, or the quoted {{removed}} literal; every
// value is a bind parameter.
//
// Ids are bound as text and compared with the id column in its own type
// (h.id = $1), so text, uuid and bigint keys all use their primary-key
// index; rows are reported and keyed in leakless_attempts by h.id::text.
//
// The removed status is a literal, not a parameter: a partial index serves a
// query only when the query's WHERE implies the index predicate, and a
// parameter implies nothing once the server switches to a generic plan.
const (
	// The schema of WithSchema, created before anything goes in it. The
	// library's tables and the host table's indexes are the versions in
	// migrations/.
	createSchemaSQL = `CREATE SCHEMA IF NOT EXISTS {{schema}}`

	// A row's NotFoundFor in microseconds, by the database's clock: at
	// least 1 once set, so a NotFound recorded this very microsecond still
	// reads as one.
	notFoundForSQL = `CASE WHEN a.not_found_since IS NULL THEN 0
       ELSE GREATEST((extract(epoch FROM now() - a.not_found_since) * 1000000)::bigint, 1) END`

	// A record's row, still pending with the record's instance: found by
	// the id's text through the removed index, as Known's removed check is.
	// {{a}} is the record's alias. A scalar subquery, not EXISTS: the
	// planner turns EXISTS into a join, estimates its three correlated
	// conditions at one row in all, and hash-joins the whole backlog and
	// sorts it (480 ms at 100,000 due rows) instead of reading a page off
	// the index and probing each row (1.5 ms).
	recordLiveSQL = `COALESCE((
        SELECT true FROM {{table}} h
        WHERE lower(h.{{id}}::text) = lower({{a}}.resource_id) AND h.{{status}} = {{removed}}
          AND h.{{id}}::text = {{a}}.resource_id AND h.{{instance}}::text = {{a}}.instance_id{{in}}
        LIMIT 1), false)`

	// $1 host table key, $2 limit. The due rows that have a record, never
	// attempted first and then failed ones, each by due time: each branch
	// reads at most $2 entries of its index that still describe a pending
	// row. A record whose row no longer holds its instance is skipped here
	// and deleted by purgeSQL.
	dueSQL = `(SELECT a.resource_id, a.instance_id, a.attempts, a.last_error,
        ` + notFoundForSQL + `
    FROM {{attempts}} a
    WHERE a.host_table = $1 AND a.attempts = 0 AND a.next_at <= now()
      AND ` + recordLiveSQL + `
    ORDER BY a.next_at, a.resource_id
    LIMIT $2)
UNION ALL
(SELECT a.resource_id, a.instance_id, a.attempts, a.last_error,
        ` + notFoundForSQL + `
    FROM {{attempts}} a
    WHERE a.host_table = $1 AND a.attempts > 0 AND a.next_at <= now()
      AND ` + recordLiveSQL + `
    ORDER BY a.next_at, a.resource_id
    LIMIT $2)`

	// $1 host table key, $2 how many rows to return, $3 how many entries
	// of the pending index to read at most, [$4 the last id read]. The
	// next rows of the pending index, in id order, that have no record for
	// their instance: rows a host removed with its own UPDATE have none
	// until their first attempt, and only this walk finds them. The read
	// stops at $2 rows or $3 entries, whichever comes first. The record
	// is probed per entry, as in recordLiveSQL: as NOT EXISTS the planner
	// hash-anti-joined the stretch with the whole of leakless_attempts (90
	// ms with 100,000 records) rather than probe its primary key 1,000
	// times.
	walkSelectSQL = `SELECT s.id::text, s.instance::text FROM (
    SELECT h.{{id}} AS id, h.{{instance}} AS instance FROM {{table}} h
    WHERE h.{{status}} = {{removed}} AND h.{{instance}} IS NOT NULL AND h.{{instance}} <> ''{{in}}`
	walkFromSQL = `
    ORDER BY h.{{id}}
    LIMIT $3
) s
WHERE NOT COALESCE((
    SELECT true FROM {{attempts}} a
    WHERE a.host_table = $1 AND a.resource_id = s.id::text AND a.instance_id = s.instance::text
    LIMIT 1), false)
ORDER BY s.id
LIMIT $2`
	walkFirstSQL = walkSelectSQL + walkFromSQL
	walkAfterSQL = walkSelectSQL + `
      AND h.{{id}} > $4` + walkFromSQL

	// $1 how many entries, [$2 the last id read]. The id of the entry of
	// the pending index that many entries on, where a walk that found too
	// few rows stopped; none when the index ends first.
	walkEndSelectSQL = `SELECT h.{{id}}::text FROM {{table}} h
WHERE h.{{status}} = {{removed}} AND h.{{instance}} IS NOT NULL AND h.{{instance}} <> ''{{in}}`
	walkEndFirstSQL = walkEndSelectSQL + `
ORDER BY h.{{id}} OFFSET $1 - 1 LIMIT 1`
	walkEndAfterSQL = walkEndSelectSQL + `
  AND h.{{id}} > $2
ORDER BY h.{{id}} OFFSET $1 - 1 LIMIT 1`

	// $1 host table key. Deletes the due records that no longer describe a
	// pending row (the host cleared, replaced or deleted it): housekeeping
	// that keeps dueSQL's reads short, run once a walk of the pending
	// index is complete.
	purgeSQL = `DELETE FROM {{attempts}} a
WHERE a.host_table = $1 AND a.next_at <= now() AND NOT ` + recordLiveSQL

	// $1 ids (text[]), $2 their instances (text[]), $3 host table key,
	// $4 the host table's quoted name, $5 the instance column's name. One
	// statement per page, so the clears and the forgetting of their attempt
	// state commit together; each row is still a compare-and-set. Rows are
	// found by the id's text through the removed index. A concurrent clear
	// of the same row waits on the row lock, then re-checks the WHERE
	// against the cleared row and matches nothing. The column is cleared to
	// '' where it is NOT NULL (a host's NOT NULL DEFAULT ''), read from the
	// catalog on every call: no session state to go stale behind a
	// transaction pooler, and the table's name resolves as the statement's
	// own reference does.
	reapedSQL = `WITH input (id, instance) AS (
    SELECT * FROM unnest($1::text[], $2::text[])
), cleared AS (
    UPDATE {{table}} h SET {{instance}} = CASE WHEN (
        SELECT attnotnull FROM pg_catalog.pg_attribute
        WHERE attrelid = to_regclass($4::text) AND attname = $5::text
    ) THEN '' END
    FROM input i
    WHERE lower(h.{{id}}::text) = lower(i.id) AND h.{{id}}::text = i.id
      AND h.{{status}} = {{removed}} AND h.{{instance}}::text = i.instance
    RETURNING h.{{id}}::text AS id
), forgotten AS (
    DELETE FROM {{attempts}} a USING cleared c
    WHERE a.host_table = $3 AND a.resource_id = c.id
)
SELECT id FROM cleared`

	// $1 host table key, $2 ids (text[]), $3 their instances, $4 last
	// errors, $5 delays in microseconds (bigint[]; 0: due now), added to
	// the database's clock, never the replica's, $6 whether each error was
	// a NotFound (boolean[]; decided in Go, where errors.Is sees through
	// wrapping), $7 whether each error was permanent (boolean[]). One
	// statement per page; the ids are distinct. Joining the host table
	// stores the id's canonical text form and records nothing for a row
	// that is gone or no longer removed. A NotFound keeps the time of the
	// first one for the same instance; anything else, or another
	// instance, starts over. A record Forget acknowledged keeps its
	// 'infinity' due time for the same instance, so a stop in flight when
	// the operator acknowledged it does not bring it back; first_at is
	// kept for the same instance (the column's default, now(), for a new
	// one).
	failedSQL = `INSERT INTO {{attempts}} AS a (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at, not_found_since, permanent)
SELECT $1::text, h.{{id}}::text, i.instance, 1, i.last_error, now(),
       now() + GREATEST(i.delay, 0) * interval '1 microsecond',
       CASE WHEN i.not_found THEN now() END, i.permanent
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::boolean[], $7::boolean[]) AS i (id, instance, last_error, delay, not_found, permanent)
JOIN {{table}} h ON lower(h.{{id}}::text) = lower(i.id) AND h.{{id}}::text = i.id AND h.{{status}} = {{removed}}
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
    acknowledged_at = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.acknowledged_at END`

	// Defers a stop in flight: the row is due only at the inserted
	// next_at, now() + the grace by the database's clock, unless it is
	// already due as late or later, which the WHERE leaves alone (GREATEST
	// by other means, and RemoveTree's later walks, in the same
	// transaction and so at the same now(), then write nothing). Its
	// attempts, last error, NotFound run, first record, permanence and
	// acknowledgement are kept; a record for another instance starts over
	// (an acknowledgement is of one instance). A new record's last_at is '-infinity', so a
	// row that has never failed still sorts before every attempted one in
	// Pending. markTreeSQL and stoppingSQL end with it.
	graceUpsertSQL = `ON CONFLICT (host_table, resource_id) DO UPDATE SET
    next_at         = EXCLUDED.next_at,
    attempts        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.attempts ELSE 0 END,
    last_error      = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.last_error ELSE '' END,
    last_at         = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.last_at ELSE EXCLUDED.last_at END,
    not_found_since = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.not_found_since END,
    permanent       = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.permanent ELSE false END,
    first_at        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.first_at ELSE EXCLUDED.first_at END,
    acknowledged_at = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.acknowledged_at END,
    instance_id     = EXCLUDED.instance_id
WHERE a.instance_id <> EXCLUDED.instance_id OR a.next_at IS NULL OR a.next_at < EXCLUDED.next_at`

	// $1 host table key, $2 id, $3 instance, $4 grace in microseconds.
	// Records nothing for a row that is gone or holds another instance.
	stoppingSQL = `INSERT INTO {{attempts}} AS a (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at)
SELECT $1::text, h.{{id}}::text, h.{{instance}}::text, 0, '', '-infinity', now() + $4::bigint * interval '1 microsecond'
FROM {{table}} h WHERE h.{{id}} = $2 AND h.{{instance}} = $3
` + graceUpsertSQL

	// $1 root id, $2 host table key, $3 redrive grace in microseconds (0:
	// none, the holders are due at once). UNION (not UNION ALL) drops a row already in the tree, which
	// is what ends a cycle in parent ids.
	removeTreeSQL = `WITH RECURSIVE tree (id) AS (
    SELECT {{id}} FROM {{table}} WHERE {{id}} = $1
  UNION
    SELECT c.{{id}} FROM {{table}} c JOIN tree t ON c.{{parent}} = t.id
), ` + markTreeSQL

	// The tree of a table without a parent column is its root alone.
	removeRootSQL = `WITH tree (id) AS (
    SELECT {{id}} FROM {{table}} WHERE {{id}} = $1
), ` + markTreeSQL

	// Locks the rows of tree, marks them removed and returns every one of
	// them, holding an instance or not (none: the root does not exist).
	// FOR UPDATE waits for a host transaction that is writing a row (say,
	// recording the instance a launch just made) and then yields the row as
	// that transaction committed it, where the statement's own snapshot
	// would still show the version from before the wait: the holder must
	// come from the locked rows, or a delete would miss an instance
	// recorded while it waited. Every holder's stop is deferred for the
	// redrive grace (deferred reads locked, so it runs however the result
	// is read); the result's attempt state is the statement snapshot's,
	// from before. Rows that transaction inserted stay
	// invisible to this statement; RemoveTree runs it again, in the same
	// transaction, until it finds no new row.
	markTreeSQL = `locked AS (
    SELECT h.{{id}} AS id, h.{{instance}} AS instance FROM {{table}} h
    WHERE h.{{id}} IN (SELECT id FROM tree)
    FOR UPDATE
), marked AS (
    UPDATE {{table}} h SET {{status}} = {{removed}}
    FROM locked l
    WHERE h.{{id}} = l.id AND h.{{status}} IS DISTINCT FROM {{removed}}
), deferred AS (
    INSERT INTO {{attempts}} AS a (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at)
    SELECT $2::text, l.id::text, l.instance::text, 0, '', '-infinity', now() + $3::bigint * interval '1 microsecond'
    FROM locked l
    WHERE l.instance IS NOT NULL AND l.instance <> ''
    ` + graceUpsertSQL + `
)
SELECT l.id::text, l.instance::text, COALESCE(a.attempts, 0), COALESCE(a.last_error, ''),
       ` + notFoundForSQL + `
FROM locked l
LEFT JOIN {{attempts}} a
       ON a.host_table = $2 AND a.resource_id = l.id::text AND a.instance_id = l.instance`

	// $1 resource ids (text[]), $2 the host table's key. The ids come
	// from instance tags, which the host did not necessarily write in the
	// id column's canonical form, or even in its type: comparing as text,
	// lower-cased, never fails on a malformed id. A partial index keeps the
	// rows compared for provisioning to the few still provisioning;
	// another finds removed rows (and those of them still holding an
	// instance whose stop has not failed for good) by the lower-cased text
	// itself. The answers come from one snapshot, with the database's
	// clock at the read in a row of its own, there even when no id is
	// sent.
	resourcesSQL = `SELECT 'provisioning', r.id, NULL::timestamptz FROM unnest($1::text[]) AS r (id)
WHERE EXISTS (
    SELECT FROM {{table}} h
    WHERE h.{{status}} IS DISTINCT FROM {{removed}} AND (h.{{instance}} IS NULL OR h.{{instance}} = '')
      AND lower(h.{{id}}::text) = lower(r.id)
)
UNION ALL
SELECT 'removed', r.id, NULL FROM unnest($1::text[]) AS r (id)
WHERE EXISTS (
    SELECT FROM {{table}} h
    WHERE h.{{status}} = {{removed}} AND lower(h.{{id}}::text) = lower(r.id)
)
UNION ALL
SELECT 'stopping', r.id, NULL FROM unnest($1::text[]) AS r (id)
WHERE EXISTS (
    SELECT FROM {{table}} h
    WHERE h.{{status}} = {{removed}} AND h.{{instance}} IS NOT NULL AND h.{{instance}} <> ''
      AND lower(h.{{id}}::text) = lower(r.id)
      AND NOT EXISTS (
          SELECT FROM {{attempts}} a
          WHERE a.host_table = $2 AND a.resource_id = h.{{id}}::text AND a.instance_id = h.{{instance}}::text AND a.permanent
      )
)
UNION ALL
SELECT 'now', NULL, now()`

	// $1 instance ids (text[]).
	heldSQL = `SELECT DISTINCT h.{{instance}}::text FROM {{table}} h WHERE h.{{instance}} = ANY ($1::text[])`

	// $1 host table key. Stats: the pending rows (removed, holding an
	// instance) through the pending index, each with its record for the
	// instance it holds, if any. A row without a record (removed by the
	// host's own UPDATE and not attempted yet) counts as pending but has
	// no age. OldestPending is in microseconds by the database's clock.
	statsSQL = `SELECT count(*) FILTER (WHERE a.acknowledged_at IS NULL),
       count(*) FILTER (WHERE a.acknowledged_at IS NULL AND a.permanent),
       count(*) FILTER (WHERE a.acknowledged_at IS NOT NULL),
       COALESCE((extract(epoch FROM now() - min(a.first_at) FILTER (WHERE a.acknowledged_at IS NULL)) * 1000000)::bigint, 0)
FROM {{table}} h
LEFT JOIN {{attempts}} a
       ON a.host_table = $1 AND a.resource_id = h.{{id}}::text AND a.instance_id = h.{{instance}}::text
WHERE h.{{status}} = {{removed}} AND h.{{instance}} IS NOT NULL AND h.{{instance}} <> ''{{in}}`

	// $1 host table key, $2 id. Acknowledges a pending row's leak: its
	// record for the instance it holds is due at 'infinity', so Pending
	// (whose due reads compare next_at <= now()) never returns it, and the
	// grace upserts (which only move next_at later) leave it so. The
	// attempt count, last error and first acknowledgement are kept; a row
	// without a record gets one. Reaped forgets it with the rest of the
	// row's state once the instance is cleared. Nothing is written for a
	// row that is not pending.
	forgetSQL = `WITH acked AS (
    INSERT INTO {{attempts}} AS a (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at, acknowledged_at)
    SELECT $1::text, h.{{id}}::text, h.{{instance}}::text, 0, '', '-infinity', 'infinity', now()
    FROM {{table}} h
    WHERE h.{{id}} = $2 AND h.{{status}} = {{removed}} AND h.{{instance}} IS NOT NULL AND h.{{instance}} <> ''
    ON CONFLICT (host_table, resource_id) DO UPDATE SET
        next_at         = 'infinity',
        acknowledged_at = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN COALESCE(a.acknowledged_at, now()) ELSE now() END,
        attempts        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.attempts ELSE 0 END,
        last_error      = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.last_error ELSE '' END,
        last_at         = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.last_at ELSE EXCLUDED.last_at END,
        not_found_since = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.not_found_since END,
        permanent       = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.permanent ELSE false END,
        first_at        = CASE WHEN a.instance_id = EXCLUDED.instance_id THEN a.first_at ELSE EXCLUDED.first_at END,
        instance_id     = EXCLUDED.instance_id
    RETURNING 1
)
SELECT count(*) FROM acked`

	// $1 name, $2 holder, $3 ttl in microseconds. Acquires a free or
	// expired lease, or renews one this holder has; a new holder starts a
	// new term. A contender racing on the same row waits for its lock and
	// re-checks the WHERE against the winner's row.
	leadSQL = `INSERT INTO {{leases}} AS l (name, holder, term, expires_at)
VALUES ($1, $2, 1, now() + $3::bigint * interval '1 microsecond')
ON CONFLICT (name) DO UPDATE SET
    term       = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now() THEN l.term ELSE l.term + 1 END,
    holder     = EXCLUDED.holder,
    expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
RETURNING l.term, now(), l.expires_at`

	// $1 name, $2 holder. Expiring (not deleting) the row keeps its term
	// counting up across holders.
	releaseSQL = `UPDATE {{leases}} SET expires_at = now()
WHERE name = $1 AND holder = $2 AND expires_at > now()`
)

// statements is every statement, expanded for one Table.
type statements struct {
	due, walkFirst, walkAfter, purge string
	walkEndFirst, walkEndAfter       string
	reaped, failed, removeTree       string
	stopping                         string
	stats, forget                    string
	resources, held                  string
	lead, release                    string
	shardLead, shardLeave            string
}

// replacer expands the templates' {{...}} names for n.
func (n names) replacer() *strings.Replacer {
	return strings.NewReplacer(
		"{{table}}", n.table,
		"{{id}}", n.id,
		"{{status}}", n.status,
		"{{instance}}", n.instance,
		"{{parent}}", n.parent,
		"{{removed}}", n.removed,
		"{{schema}}", n.schema,
		"{{attempts}}", n.attempts,
		"{{leases}}", n.leases,
		"{{pending_index}}", n.pendingIndex,
		"{{old_pending_index}}", n.oldPendingIndex,
		"{{provisioning_index}}", n.provisioningIndex,
		"{{removed_index}}", n.removedIndex,
		"{{a}}", "a",
		"{{in}}", n.in,
	)
}

func newStatements(n names) statements {
	r := n.replacer()
	var s statements
	s.due = r.Replace(dueSQL)
	s.walkFirst = r.Replace(walkFirstSQL)
	s.walkAfter = r.Replace(walkAfterSQL)
	s.walkEndFirst = r.Replace(walkEndFirstSQL)
	s.walkEndAfter = r.Replace(walkEndAfterSQL)
	// The purge judges every record of the table, whatever the store's
	// scope: a record of another location is not stale.
	s.purge = r.Replace(strings.ReplaceAll(purgeSQL, "{{in}}", ""))
	s.reaped = r.Replace(reapedSQL)
	s.failed = r.Replace(failedSQL)
	s.stopping = r.Replace(stoppingSQL)
	s.stats = r.Replace(statsSQL)
	s.forget = r.Replace(forgetSQL)
	if n.parent != "" {
		s.removeTree = r.Replace(removeTreeSQL)
	} else {
		s.removeTree = r.Replace(removeRootSQL)
	}
	s.resources = r.Replace(resourcesSQL)
	s.held = r.Replace(heldSQL)
	s.lead = r.Replace(leadSQL)
	s.release = r.Replace(releaseSQL)
	s.shardLead = r.Replace(shardLeadSQL)
	s.shardLeave = r.Replace(shardLeaveSQL)
	return s
}

// int64Array renders ns as a PostgreSQL bigint[] literal, bound as text
// and cast, as textArray's are.
func int64Array(ns []int64) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.FormatInt(n, 10)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// boolArray renders bs as a PostgreSQL boolean[] literal.
func boolArray(bs []bool) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = strconv.FormatBool(b)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// textArray renders ids as a PostgreSQL text[] literal, bound as one text
// parameter and cast with $n::text[]. That works with every database/sql
// driver, where a Go slice would need a driver-specific wrapper.
func textArray(ids []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(id); j++ {
			if id[j] == '"' || id[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(id[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// storable reports whether s can be a PostgreSQL text value at all. An id
// that cannot is held by no row, and sending it would fail the whole query.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Shard leases (shards.go): one lease row per shard, named
// GROUP/shard/SHARD, and one membership row per replica, named
// GROUP/member/HOLDER, all in the leases table. A replica leads a shard
// only while it leads fewer of the group's other shards than its share,
// ⌈shards / live replicas⌉; a replica is live while its membership row is
// unexpired, and every shardLead renews it. Every time is the database's
// now(): one statement, one transaction, one clock.
const (
	// $1 shard lease name, $2 holder, $3 ttl in microseconds, $4 this
	// replica's membership row, $5 the group's shard prefix, $6 its member
	// prefix, $7 the number of shards. The members CTE counts the others
	// (the statement's snapshot does not see the row member writes) and
	// this replica. The row proposed for the shard says the decision: due
	// to expire a ttl from now when this replica may lead, now when it may
	// not. On conflict it renews (or, over the share, releases at once) a
	// lease this holder has, and takes a free or expired one only when
	// allowed; a free one it may not take it leaves alone. A new row this
	// replica may not lead is inserted already expired, term 0. A
	// contender racing on the same row waits for its lock and re-checks
	// the WHERE against the winner's row. Expired membership rows of other
	// replicas are deleted on the way.
	shardLeadSQL = `WITH member AS (
    INSERT INTO {{leases}} (name, holder, term, expires_at)
    VALUES ($4::text, $2::text, 1, now() + $3::bigint * interval '1 microsecond')
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
), departed AS (
    DELETE FROM {{leases}}
    WHERE starts_with(name, $6::text) AND name <> $4::text AND expires_at <= now()
), members AS (
    SELECT count(*) + 1 AS n FROM {{leases}}
    WHERE starts_with(name, $6::text) AND name <> $4::text AND expires_at > now()
), led AS (
    SELECT count(*) AS n FROM {{leases}}
    WHERE starts_with(name, $5::text) AND name <> $1::text AND holder = $2::text AND expires_at > now()
), decision AS (
    SELECT led.n < ($7::bigint + members.n - 1) / members.n AS may FROM members, led
)
INSERT INTO {{leases}} AS l (name, holder, term, expires_at)
SELECT $1::text, $2::text,
       CASE WHEN d.may THEN 1 ELSE 0 END,
       CASE WHEN d.may THEN now() + $3::bigint * interval '1 microsecond' ELSE now() END
FROM decision d
ON CONFLICT (name) DO UPDATE SET
    term       = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now() THEN l.term ELSE l.term + 1 END,
    holder     = EXCLUDED.holder,
    expires_at = EXCLUDED.expires_at
WHERE (l.holder = EXCLUDED.holder AND l.expires_at > now())
   OR (l.expires_at <= now() AND EXCLUDED.expires_at > now())
RETURNING l.term, now(), l.expires_at, l.expires_at > now()`

	// $1 this replica's membership row, $2 the group's shard prefix, $3
	// holder. Expires the membership and every shard lease this replica
	// holds in the group, so the others need not wait out the ttl.
	shardLeaveSQL = `UPDATE {{leases}} SET expires_at = now()
WHERE (name = $1::text OR starts_with(name, $2::text)) AND holder = $3::text AND expires_at > now()`
)
