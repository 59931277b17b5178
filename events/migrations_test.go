package events_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/store"
)

// A table the unversioned Migrate of an earlier release created, with its
// events, takes version 1 as it is; CheckSchema fails before and passes
// after, through either driver.
func TestMigrateUpgradesAnUnversionedTable(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			db := pgtest.Open(t)
			ctx := context.Background()
			s := d.sink(t, db)
			if _, err := db.Pool.Exec(ctx, `CREATE TABLE structure_events (
				id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_type text NOT NULL, subject_id text,
				payload jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now());
				INSERT INTO structure_events (event_type, subject_id) VALUES ('teardown.retry_exhausted', 'ws-1')`); err != nil {
				t.Fatal(err)
			}
			if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
				t.Fatalf("SchemaVersion = %d, %v; want 0", v, err)
			}
			if err := s.CheckSchema(ctx); !errors.Is(err, events.ErrSchemaVersion) || !strings.Contains(err.Error(), "events:structure_events: database is at version 0") {
				t.Fatalf("CheckSchema before Migrate = %v; want ErrSchemaVersion at version 0", err)
			}
			for range 2 {
				if err := s.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.CheckSchema(ctx); err != nil {
				t.Fatalf("CheckSchema after Migrate: %v", err)
			}
			if got := list(t, s, events.Filter{}); len(got) != 1 || got[0].Subject != "ws-1" {
				t.Fatalf("List = %+v, want the event from before", got)
			}
			var n int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM leakless_migrations WHERE component = 'events:structure_events'`).Scan(&n); err != nil || n != len(s.Migrations()) {
				t.Fatalf("%d version rows, %v; want %d after two Migrates", n, err, len(s.Migrations()))
			}
		})
	}
}

// A newer release's version is left alone and reported.
func TestCheckSchemaAhead(t *testing.T) {
	s, db := migrated(t, drivers[0])
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leakless_migrations (component, version, name) VALUES ('events:structure_events', 99, 'later')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSchema(ctx); !errors.Is(err, events.ErrSchemaVersion) || !strings.Contains(err.Error(), "version 99, newer") {
		t.Fatalf("CheckSchema = %v; want ErrSchemaVersion for a newer database", err)
	}
}

// The store and the sink share the version table: replicas starting
// together migrate both at once without tripping over each other.
func TestMigrateWithTheStoreConcurrently(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE workspaces (id text PRIMARY KEY, status text, instance_id text)`); err != nil {
		t.Fatal(err)
	}
	st, err := store.NewPgx(db.Pool, store.Table{Name: "workspaces", ID: "id", Status: "status", InstanceID: "instance_id", Removed: "removed"})
	if err != nil {
		t.Fatal(err)
	}
	sink := drivers[0].sink(t, db)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			if i%2 == 0 {
				errs[i] = st.Migrate(ctx)
			} else {
				errs[i] = sink.Migrate(ctx)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	if err := errors.Join(st.CheckSchema(ctx), sink.CheckSchema(ctx)); err != nil {
		t.Fatal(err)
	}
}
