package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/teardown"
)

// newPgxStore opens a fresh schema with the test's host table and a
// migrated store over it.
func newPgxStore(t *testing.T, opts ...Option) (*Postgres, *pgtest.DB) {
	t.Helper()
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")
	st, err := NewPgx(db.Pool, testTable(true), opts...)
	return migrated(t, st, err), db
}

// drivers are the two ways a host reaches Postgres.
var drivers = []string{"pgx", "sql"}

// newStoreOn returns a migrated store over tbl in db's schema, through the
// named driver.
func newStoreOn(t *testing.T, driver string, db *pgtest.DB, tbl Table, opts ...Option) *Postgres {
	t.Helper()
	var st *Postgres
	var err error
	switch driver {
	case "pgx":
		st, err = NewPgx(db.Pool, tbl, opts...)
	case "sql":
		st, err = NewSQL(db.SQL, tbl, opts...)
	default:
		t.Fatalf("unknown driver %q", driver)
	}
	return migrated(t, st, err)
}

// openOn is a fresh schema with the test's host table (text ids) and a
// migrated store over it through the named driver.
func openOn(t *testing.T, driver string, opts ...Option) (*Postgres, *pgtest.DB) {
	t.Helper()
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")
	return newStoreOn(t, driver, db, testTable(true), opts...), db
}

// An instance id column holding the empty string means no instance, as
// NULL does.
func TestPostgresEmptyInstanceIDIsNone(t *testing.T) {
	st, db := newPgxStore(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id) VALUES
		('gone', 'removed', ''), ('new', 'active', '')`); err != nil {
		t.Fatal(err)
	}
	if ps, err := st.Pending(ctx, 10); err != nil || len(ps) != 0 {
		t.Fatalf("Pending = %+v, %v; want nothing: '' holds no instance", ps, err)
	}
	k, err := st.Known(ctx, []string{"gone", "new"}, []string{""})
	if err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(k.Provisioning, map[string]bool{"new": true}) || len(k.Held) != 0 {
		t.Fatalf("Known = %+v, want only row new provisioning", k)
	}
	got, err := st.RemoveTree(ctx, "new")
	if err != nil || len(got) != 0 {
		t.Fatalf("RemoveTree(new) = %+v, %v; want no holders", got, err)
	}
}

// Known sends large inputs in chunks; ids on both sides of every chunk
// boundary are found.
func TestPostgresKnownChunks(t *testing.T) {
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")
	st, err := NewSQL(db.SQL, testTable(true), func(c *config) { c.chunk = 2 })
	st = migrated(t, st, err)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id)
		SELECT 'ws-' || g, 'active', CASE WHEN g % 2 = 0 THEN 'i-' || g END FROM generate_series(1, 7) g`); err != nil {
		t.Fatal(err)
	}
	var resources, instances []string
	for i := 1; i <= 7; i++ {
		resources = append(resources, fmt.Sprint("ws-", i))
		instances = append(instances, fmt.Sprint("i-", i))
	}
	k, err := st.Known(ctx, resources, instances)
	if err != nil {
		t.Fatal(err)
	}
	wantProv := map[string]bool{"ws-1": true, "ws-3": true, "ws-5": true, "ws-7": true}
	wantHeld := map[string]bool{"i-2": true, "i-4": true, "i-6": true}
	if !mapsEqual(k.Provisioning, wantProv) || !mapsEqual(k.Held, wantHeld) {
		t.Fatalf("Known = %+v, want Provisioning %v and Held %v", k, wantProv, wantHeld)
	}
}

func TestPostgresMigrateIsIdempotentAndConcurrencySafe(t *testing.T) {
	st, db := newPgxStore(t) // migrated once already
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = st.Migrate(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename = 'workspaces' AND indexname LIKE 'leakless%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d leakless indexes on the host table, want 3", n)
	}
}

// The host's table gains three indexes and nothing else: no column, no
// constraint, no trigger.
func TestPostgresMigrateLeavesHostColumnsAlone(t *testing.T) {
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "uuid")
	columns := func() []string {
		rows, err := db.Pool.Query(context.Background(), `SELECT column_name || ' ' || data_type || ' ' || is_nullable
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'workspaces'
			ORDER BY ordinal_position`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return cols
	}
	before := columns()
	st, err := NewPgx(db.Pool, testTable(true))
	migrated(t, st, err)
	if after := columns(); !slices.Equal(before, after) {
		t.Fatalf("host columns changed by Migrate:\nbefore %v\nafter  %v", before, after)
	}
}

// WithSchema puts the library's tables in their own schema; the host's
// table may be schema-qualified too.
func TestPostgresWithSchema(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	lib := db.Schema + "_lib"
	t.Cleanup(func() {
		if _, err := db.Pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+lib+` CASCADE`); err != nil {
			t.Errorf("drop %s: %v", lib, err)
		}
	})
	createHostTable(t, db.Pool, "text")
	tbl := testTable(true)
	tbl.Name = db.Schema + ".workspaces"
	st, err := NewPgx(db.Pool, tbl, WithSchema(lib))
	st = migrated(t, st, err)

	rows, err := db.Pool.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_name LIKE 'leakless\_%' AND table_schema IN ($1, $2) ORDER BY 1`, db.Schema, lib)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{lib + ".leakless_attempts", lib + ".leakless_leases", lib + ".leakless_migrations"}
	if !slices.Equal(got, want) {
		t.Fatalf("library tables %v, want %v", got, want)
	}

	if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id) VALUES ('a', 'removed', 'i-a')`); err != nil {
		t.Fatal(err)
	}
	p := Pending{ResourceID: "a", InstanceID: "i-a"}
	if err := st.Failed(ctx, p, errors.New("boom"), dueLater); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT attempts FROM `+lib+`.leakless_attempts WHERE resource_id = 'a'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("attempts in %s = %d, %v; want 1", lib, n, err)
	}
	if ok, err := st.Lease("sweeper", 5*time.Second).Lead(ctx); err != nil || !ok {
		t.Fatalf("Lead = %v, %v; want true", ok, err)
	}
}

// explain returns the generic plan of query, prepared on one connection
// with sequential scans discouraged, so the plan names an index whenever
// the query can use one at all.
func explain(t *testing.T, pool *pgxpool.Pool, query string, args ...string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, q := range []string{
		`SET plan_cache_mode = force_generic_plan`,
		`SET enable_seqscan = off`,
		`PREPARE leakless_explained AS ` + query,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	defer func() {
		_, _ = conn.Exec(ctx, `DEALLOCATE leakless_explained; RESET plan_cache_mode; RESET enable_seqscan`)
	}()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = quoteLiteral(a)
	}
	rows, err := conn.Query(ctx, `EXPLAIN EXECUTE leakless_explained(`+strings.Join(quoted, ", ")+`)`,
		pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// The partial indexes serve their queries even in a generic plan, where a
// status bound as a parameter would imply nothing: the reason the removed
// status is a literal.
func TestPostgresQueriesUsePartialIndexes(t *testing.T) {
	for _, removed := range []string{"removed", `it's \gone`} {
		t.Run(removed, func(t *testing.T) {
			db := pgtest.Open(t)
			createHostTable(t, db.Pool, "uuid")
			tbl := testTable(true)
			tbl.Removed = removed
			st, err := NewPgx(db.Pool, tbl)
			st = migrated(t, st, err)

			due := explain(t, db.Pool, st.sql.due, "workspaces", "100")
			for _, index := range []string{"leakless_attempts_untried", "leakless_attempts_tried", "leakless_removed_workspaces"} {
				if !strings.Contains(due, index) {
					t.Errorf("Pending's due rows' generic plan does not use %s:\n%s", index, due)
				}
			}
			for name, plan := range map[string]string{
				"first": explain(t, db.Pool, st.sql.walkFirst, "workspaces", "100", "200"),
				"after": explain(t, db.Pool, st.sql.walkAfter, "workspaces", "100", "200", "00000000-0000-0000-0000-000000000000"),
				"end":   explain(t, db.Pool, st.sql.walkEndAfter, "200", "00000000-0000-0000-0000-000000000000"),
			} {
				if !strings.Contains(plan, "leakless_unreaped_workspaces") || strings.Contains(plan, "Sort") {
					t.Errorf("Pending's walk (%s) does not read the pending index in order:\n%s", name, plan)
				}
			}
			plan := explain(t, db.Pool, st.sql.resources, "{a,b}", "workspaces")
			for _, index := range []string{"leakless_provisioning_workspaces", "leakless_removed_workspaces"} {
				if !strings.Contains(plan, index) {
					t.Errorf("Known's resources plan does not use %s:\n%s", index, plan)
				}
			}
		})
	}
}

// A Removed value with a quote and a backslash is matched exactly,
// whatever the session's standard_conforming_strings.
func TestPostgresRemovedLiteral(t *testing.T) {
	const removed = `it's \gone`
	for _, conforming := range []string{"on", "off"} {
		t.Run("standard_conforming_strings="+conforming, func(t *testing.T) {
			db := pgtest.Open(t)
			createHostTable(t, db.Pool, "text")
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, db.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close(context.Background()) })
			if _, err := conn.Exec(ctx, `SET standard_conforming_strings = `+conforming); err != nil {
				t.Fatal(err)
			}
			tbl := testTable(true)
			tbl.Removed = removed
			st, err := NewPgx(conn, tbl)
			st = migrated(t, st, err)

			if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, parent_id, status, instance_id) VALUES
				('a', NULL, $1, 'i-a'), ('b', NULL, 'removed', 'i-b'), ('c', NULL, 'active', 'i-c'), ('d', 'c', 'active', 'i-d')`, removed); err != nil {
				t.Fatal(err)
			}
			ps, err := st.Pending(ctx, 10)
			if err != nil || !slices.Equal(ids(ps), []string{"a"}) {
				t.Fatalf("Pending = %v, %v; want only row a", ids(ps), err)
			}
			if _, err := st.RemoveTree(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM workspaces WHERE status = $1`, removed).Scan(&n); err != nil || n != 3 {
				t.Fatalf("%d rows with status %q, want 3 (a, c, d): %v", n, removed, err)
			}
		})
	}
}

// Ids the id column's type cannot represent are simply not found: they
// come from instance tags, and one bad tag must not fail every sweep.
func TestPostgresKnownToleratesMalformedIDs(t *testing.T) {
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "bigint")
	st, err := NewPgx(db.Pool, testTable(true))
	st = migrated(t, st, err)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status) VALUES (7, 'active')`); err != nil {
		t.Fatal(err)
	}
	k, err := st.Known(ctx, []string{"7", "seven", "1e3", `"7"`, `{7}`, `7\`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(k.Provisioning, map[string]bool{"7": true}) {
		t.Fatalf("Provisioning = %v, want only 7", k.Provisioning)
	}
}

// textArray's literal reaches the server as exactly the strings sent.
func TestTextArrayRoundTrip(t *testing.T) {
	db := pgtest.Open(t)
	in := []string{"plain", `quote"d`, `back\slash`, "comma,brace{}", "NULL", "", " spaced ", "é"}
	rows, err := db.Pool.Query(context.Background(), `SELECT unnest($1::text[])`, textArray(in))
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, in) {
		t.Fatalf("round trip = %q, want %q", got, in)
	}
}

// Failed's delay is added to the database's clock: no replica clock is
// consulted, so a replica hours off cannot hide a row for hours or make it
// due early.
func TestPostgresFailedDelayIsTheDatabasesClock(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			st, db := openOn(t, driver)
			ctx := context.Background()
			if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id) VALUES
				('later', 'removed', 'i-later'), ('now', 'removed', 'i-now'), ('negative', 'removed', 'i-negative')`); err != nil {
				t.Fatal(err)
			}
			for id, delay := range map[string]time.Duration{"later": time.Hour, "now": 0, "negative": -24 * time.Hour} {
				if err := st.Failed(ctx, Pending{ResourceID: id, InstanceID: "i-" + id}, errors.New("boom"), delay); err != nil {
					t.Fatal(err)
				}
			}
			ps, err := st.Pending(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(slices.Values(ids(ps))); !slices.Equal(got, []string{"negative", "now"}) {
				t.Fatalf("Pending = %v, want negative and now: later waits an hour", got)
			}
			// next_at is an hour past the database's now(), give or take
			// the time the test took; a zero or negative delay is due at
			// the database's now() of the write, never before it.
			var ahead time.Duration
			var dueAt []string
			if err := db.Pool.QueryRow(ctx, `SELECT (extract(epoch FROM next_at - now()) * 1000000)::bigint * 1000
				FROM leakless_attempts WHERE resource_id = 'later'`).Scan(&ahead); err != nil {
				t.Fatal(err)
			}
			if ahead <= 59*time.Minute || ahead > time.Hour {
				t.Fatalf("next_at is %v past the database's now(), want just under 1h", ahead)
			}
			rows, err := db.Pool.Query(ctx, `SELECT resource_id FROM leakless_attempts WHERE next_at = last_at ORDER BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			if dueAt, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dueAt, []string{"negative", "now"}) {
				t.Fatalf("rows due at the time of their failure: %v, want negative and now", dueAt)
			}
		})
	}
}

// Known.Now is the database's clock at the read.
func TestPostgresKnownNowIsTheDatabasesClock(t *testing.T) {
	st, db := newPgxStore(t)
	ctx := context.Background()
	var before, after time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	k, err := st.Known(ctx, []string{"a"}, []string{"i-a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if k.Now.Before(before) || k.Now.After(after) {
		t.Fatalf("Known.Now = %v, want between the database's %v and %v", k.Now, before, after)
	}
}

// A leakless_attempts made by an earlier release gains the columns added
// since, so Failed and Pending work on it after Migrate.
func TestPostgresMigrateUpgradesAttempts(t *testing.T) {
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE leakless_attempts (
		host_table  text        NOT NULL,
		resource_id text        NOT NULL,
		instance_id text        NOT NULL,
		attempts    integer     NOT NULL,
		last_error  text        NOT NULL,
		last_at     timestamptz NOT NULL,
		next_at     timestamptz,
		PRIMARY KEY (host_table, resource_id)
	);
	INSERT INTO leakless_attempts VALUES ('workspaces', 'a', 'i-a', 2, 'throttled', now(), NULL);
	INSERT INTO workspaces (id, status, instance_id) VALUES ('a', 'removed', 'i-a')`); err != nil {
		t.Fatal(err)
	}
	st, err := NewPgx(db.Pool, testTable(true))
	st = migrated(t, st, err)
	p := Pending{ResourceID: "a", InstanceID: "i-a"}
	if err := st.Failed(ctx, p, teardown.ErrNotFound, 0); err != nil {
		t.Fatal(err)
	}
	ps, err := st.Pending(ctx, 10)
	if err != nil || len(ps) != 1 || ps[0].Attempts != 3 || ps[0].NotFoundFor <= 0 {
		t.Fatalf("Pending = %+v, %v; want row a with 3 attempts and a NotFoundFor", ps, err)
	}
}

// The first release's pending index let the empty string in; Migrate
// replaces it with one that does not, on a schema-qualified host table
// too.
func TestPostgresMigrateReplacesTheOldPendingIndex(t *testing.T) {
	db := pgtest.Open(t)
	createHostTableWith(t, db.Pool, "text", "text NOT NULL DEFAULT ''")
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE INDEX leakless_pending_workspaces ON workspaces (id, instance_id)
		WHERE status = 'removed' AND instance_id IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	tbl := testTable(true)
	tbl.Name = db.Schema + ".workspaces"
	st, err := NewPgx(db.Pool, tbl)
	migrated(t, st, err)
	rows, err := db.Pool.Query(ctx, `SELECT indexname || ': ' || indexdef FROM pg_indexes
		WHERE schemaname = $1 AND tablename = 'workspaces' AND indexname LIKE 'leakless%' ORDER BY 1`, db.Schema)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !strings.HasPrefix(got[0], "leakless_provisioning_workspaces: ") ||
		!strings.HasPrefix(got[1], "leakless_removed_workspaces: ") ||
		!strings.HasPrefix(got[2], "leakless_unreaped_workspaces: ") || !strings.Contains(got[2], "<> ''") {
		t.Fatalf("leakless indexes after Migrate:\n%s\nwant the provisioning and removed indexes and leakless_unreaped_workspaces excluding ''",
			strings.Join(got, "\n"))
	}
}

// The redrive grace is counted on the database's clock, never lets a
// longer backoff run short, and starts a record for another instance over.
func TestPostgresRedriveGraceIsTheDatabasesClock(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			st, db := openOn(t, driver, WithRedriveGrace(10*time.Minute))
			ctx := context.Background()
			if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, parent_id, status, instance_id) VALUES
				('root', NULL, 'active', 'i-root'), ('backoff', 'root', 'removed', 'i-backoff'),
				('replaced', 'root', 'removed', 'i-new'), ('none', 'root', 'active', NULL)`); err != nil {
				t.Fatal(err)
			}
			if err := st.Failed(ctx, Pending{ResourceID: "backoff", InstanceID: "i-backoff"}, errors.New("throttled"), 2*time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Pool.Exec(ctx, `INSERT INTO leakless_attempts VALUES
				('workspaces', 'replaced', 'i-old', 5, 'old', now(), now() + interval '1 day', now())`); err != nil {
				t.Fatal(err)
			}
			if _, err := st.RemoveTree(ctx, "root"); err != nil {
				t.Fatal(err)
			}
			type record struct {
				instance  string
				attempts  int
				lastError string
				neverRun  bool          // last_at is -infinity
				ahead     time.Duration // next_at - now()
				notFound  bool
			}
			rows, err := db.Pool.Query(ctx, `SELECT resource_id, instance_id, attempts, last_error, last_at = '-infinity',
				(extract(epoch FROM next_at - now()) * 1000000)::bigint * 1000, not_found_since IS NOT NULL
				FROM leakless_attempts ORDER BY resource_id`)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]record{}
			for rows.Next() {
				var id string
				var r record
				if err := rows.Scan(&id, &r.instance, &r.attempts, &r.lastError, &r.neverRun, &r.ahead, &r.notFound); err != nil {
					t.Fatal(err)
				}
				got[id] = r
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			near := func(d, want time.Duration) bool { return d > want-time.Minute && d <= want }
			if len(got) != 3 {
				t.Fatalf("attempt records %+v, want root, backoff and replaced", got)
			}
			if r := got["root"]; r.instance != "i-root" || r.attempts != 0 || !r.neverRun || !near(r.ahead, 10*time.Minute) {
				t.Errorf("root's record %+v, want i-root, no attempts, never run, due in 10m", r)
			}
			if r := got["backoff"]; r.attempts != 1 || r.lastError != "throttled" || r.neverRun || !near(r.ahead, 2*time.Hour) {
				t.Errorf("backoff's record %+v, want its attempt kept and still due in 2h", r)
			}
			if r := got["replaced"]; r.instance != "i-new" || r.attempts != 0 || r.lastError != "" || !r.neverRun || r.notFound || !near(r.ahead, 10*time.Minute) {
				t.Errorf("replaced's record %+v, want i-new started over, due in 10m", r)
			}
		})
	}
}

// Reaped finds the instance column NOT NULL through a schema-qualified
// table name too, and clears it to the empty string.
func TestPostgresReapedNotNullQualifiedTable(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			db := pgtest.Open(t)
			createHostTableWith(t, db.Pool, "text", "text NOT NULL DEFAULT ''")
			tbl := testTable(true)
			tbl.Name = db.Schema + ".workspaces"
			st := newStoreOn(t, driver, db, tbl)
			ctx := context.Background()
			if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id) VALUES ('a', 'removed', 'i-a')`); err != nil {
				t.Fatal(err)
			}
			if ok, err := st.Reaped(ctx, Pending{ResourceID: "a", InstanceID: "i-a"}); !ok || err != nil {
				t.Fatalf("Reaped = %v, %v; want true", ok, err)
			}
			var inst string
			if err := db.Pool.QueryRow(ctx, `SELECT instance_id FROM workspaces WHERE id = 'a'`).Scan(&inst); err != nil || inst != "" {
				t.Fatalf("instance_id after Reaped = %q, %v; want ''", inst, err)
			}
		})
	}
}
