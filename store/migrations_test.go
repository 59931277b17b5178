package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/leakless/leakless/internal/pgtest"
)

// unversioned is what the unversioned Migrate of the release before
// versions ran: version 1's statements, with no version table.
func unversioned(t *testing.T, db *pgtest.DB, st *Postgres) {
	t.Helper()
	for _, q := range st.mig.Versions[0].Stmts {
		if _, err := db.Pool.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func wantVersion(t *testing.T, st *Postgres, want int) {
	t.Helper()
	if v, err := st.SchemaVersion(context.Background()); err != nil || v != want {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, want)
	}
}

func wantSchemaError(t *testing.T, st *Postgres, contains string) {
	t.Helper()
	err := st.CheckSchema(context.Background())
	if !errors.Is(err, ErrSchemaVersion) || !strings.Contains(err.Error(), contains) {
		t.Fatalf("CheckSchema = %v; want an error wrapping ErrSchemaVersion saying %q", err, contains)
	}
}

// A database an unversioned Migrate created, with its rows, takes every
// version: version 1 is idempotent over it.
func TestMigrateUpgradesAnUnversionedSchema(t *testing.T) {
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")
	ctx := context.Background()
	st, err := NewPgx(db.Pool, testTable(true))
	if err != nil {
		t.Fatal(err)
	}
	unversioned(t, db, st)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id) VALUES ('a', 'removed', 'i-a');
		INSERT INTO leakless_attempts (host_table, resource_id, instance_id, attempts, last_error, last_at, next_at)
		VALUES ('workspaces', 'a', 'i-a', 4, 'throttled', now(), now())`); err != nil {
		t.Fatal(err)
	}
	wantVersion(t, st, 0)
	wantSchemaError(t, st, fmt.Sprintf("database is at version 0, the code expects %d", st.mig.Latest()))

	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over an unversioned schema: %v", err)
	}
	wantVersion(t, st, st.mig.Latest())
	if err := st.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after Migrate: %v", err)
	}
	ps, err := st.Pending(ctx, 10)
	if err != nil || len(ps) != 1 || ps[0].Attempts != 4 {
		t.Fatalf("Pending = %+v, %v; want row a with its 4 attempts kept", ps, err)
	}
	if s, err := st.Stats(ctx); err != nil || s.Pending != 1 || s.OldestPending <= 0 {
		t.Fatalf("Stats = %+v, %v; want the old record pending, dated from the migration", s, err)
	}
}

// Migrate twice, and from many replicas, records each version once.
func TestMigrateTwiceIsANoOp(t *testing.T) {
	st, db := newPgxStore(t)
	ctx := context.Background()
	var before string
	if err := db.Pool.QueryRow(ctx, `SELECT string_agg(version || ':' || applied_at, ',' ORDER BY version) FROM leakless_migrations`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var after string
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT string_agg(version || ':' || applied_at, ',' ORDER BY version), count(*) FROM leakless_migrations
		WHERE component = 'store:workspaces'`).Scan(&after, &n); err != nil {
		t.Fatal(err)
	}
	if n != st.mig.Latest() || after != before {
		t.Fatalf("versions after a second Migrate: %d rows %q, want the %d of the first %q", n, after, st.mig.Latest(), before)
	}
}

// A host that applies the SQL with its own tool, one version at a time,
// sees each step in SchemaVersion and passes CheckSchema at the end.
func TestMigrationsAppliedByHand(t *testing.T) {
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")
	ctx := context.Background()
	st, err := NewPgx(db.Pool, testTable(true), WithSchema(db.Schema+"_lib"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+db.Schema+`_lib CASCADE`) })
	wantVersion(t, st, 0) // not even the schema exists yet
	ms := st.Migrations()
	if len(ms) < 2 || ms[0].Name != "initial" || ms[1].Name != "operator_state" {
		t.Fatalf("Migrations = %+v, want versions 1 (initial), 2 (operator_state), ...", ms)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Fatalf("Migrations[%d] is version %d, want %d", i, m.Version, i+1)
		}
	}
	for _, m := range ms {
		if _, err := db.Pool.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("version %d by hand: %v", m.Version, err)
		}
		wantVersion(t, st, m.Version)
		if m.Version < len(ms) {
			wantSchemaError(t, st, "run Migrate")
		}
	}
	if err := st.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after every version by hand: %v", err)
	}
	if err := st.Migrate(ctx); err != nil { // nothing left to do
		t.Fatal(err)
	}
	// The whole script, applied again, changes nothing and fails on nothing.
	if _, err := db.Pool.Exec(ctx, st.SchemaSQL()); err != nil {
		t.Fatalf("SchemaSQL applied again: %v", err)
	}
	wantVersion(t, st, st.mig.Latest())
}

// Each host table is its own component: migrating one says nothing of
// another sharing the library's tables.
func TestMigrateVersionsEachTable(t *testing.T) {
	st, db := newPgxStore(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE projects (id text PRIMARY KEY, status text, instance_id text)`); err != nil {
		t.Fatal(err)
	}
	other, err := NewPgx(db.Pool, Table{Name: "projects", ID: "id", Status: "status", InstanceID: "instance_id", Removed: "removed"})
	if err != nil {
		t.Fatal(err)
	}
	wantVersion(t, st, st.mig.Latest())
	wantVersion(t, other, 0)
	wantSchemaError(t, other, "store:projects")
}

// A database a newer release migrated is left alone by Migrate, and
// CheckSchema says so.
func TestCheckSchemaAhead(t *testing.T) {
	st, db := newPgxStore(t)
	ctx := context.Background()
	ahead := st.mig.Latest() + 1
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leakless_migrations (component, version, name) VALUES ('store:workspaces', $1, 'from_the_future')`, ahead); err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on a newer schema: %v", err)
	}
	wantVersion(t, st, ahead)
	wantSchemaError(t, st, fmt.Sprintf("newer than the %d this code knows", st.mig.Latest()))
}

// Through database/sql too.
func TestCheckSchemaSQL(t *testing.T) {
	st, _ := openOn(t, "sql")
	if err := st.CheckSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantVersion(t, st, st.mig.Latest())
}
