package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/leakless/leakless/store"
)

var workspaces = store.Table{
	Name: "workspaces", ID: "id", Parent: "parent_id",
	Status: "status", InstanceID: "instance_id", Removed: "removed",
}

// A delete whose stops partly fail, and the retried delete that re-drives
// them: the cascade returns already-removed rows too.
func Example() {
	ctx := context.Background()
	st := store.NewMemory(workspaces)
	st.Put(store.Row{ID: "ws-1", Status: "active", InstanceID: "i-0aa"})
	st.Put(store.Row{ID: "ws-2", Parent: "ws-1", Status: "active", InstanceID: "i-0bb"})
	st.Put(store.Row{ID: "ws-3", Parent: "ws-2", Status: "active"})

	// DELETE /workspaces/ws-1 marks the tree removed first, then stops
	// what it holds.
	held, _ := st.RemoveTree(ctx, "ws-1")
	fmt.Println("stop:", held)

	// i-0aa stopped; i-0bb was throttled and the request gave up.
	_, _ = st.Reaped(ctx, held[0])
	_ = st.Failed(ctx, held[1], errors.New("RequestLimitExceeded"), 0)

	// The client retries the DELETE: ws-2 is already removed, and is
	// returned all the same.
	held, _ = st.RemoveTree(ctx, "ws-1")
	fmt.Println("retry:", held)

	// The sweeper leaves the stop the retried request is making to it for
	// the redrive grace (two minutes by default), then re-drives it if
	// the row still holds the instance.
	pending, _ := st.Pending(ctx, 100)
	fmt.Println("sweep:", pending)
	// Output:
	// stop: [{ws-1 i-0aa 0  0s} {ws-2 i-0bb 0  0s}]
	// retry: [{ws-2 i-0bb 1 RequestLimitExceeded 0s}]
	// sweep: []
}

// Reaped is a compare-and-set: if the host gave the row a new instance
// after Pending read it, the clear is refused and the new instance kept.
func ExampleMemory_Reaped() {
	ctx := context.Background()
	st := store.NewMemory(workspaces)
	st.Put(store.Row{ID: "ws-1", Status: "removed", InstanceID: "i-old"})
	pending, _ := st.Pending(ctx, 10)

	st.Put(store.Row{ID: "ws-1", Status: "removed", InstanceID: "i-new"}) // the host, meanwhile

	cleared, _ := st.Reaped(ctx, pending[0])
	row, _ := st.Get("ws-1")
	fmt.Println(cleared, row.InstanceID)
	// Output: false i-new
}

// Known is what keeps row-gone reaping away from live instances: i-1 is
// held by a row, and ws-2 is still provisioning, so its instance (tagged
// with ws-2) is in use too.
func ExampleMemory_Known() {
	st := store.NewMemory(workspaces)
	st.Put(store.Row{ID: "ws-1", Status: "active", InstanceID: "i-1"})
	st.Put(store.Row{ID: "ws-2", Status: "creating"})
	k, _ := st.Known(context.Background(), []string{"ws-2", "ws-9"}, []string{"i-1", "i-9"})
	fmt.Println(k.Held, k.Provisioning)
	// Output: map[i-1:true] map[ws-2:true]
}

// Migrations are what Migrate applies, one numbered version each, for
// hosts that apply migrations with their own tools (goose,
// golang-migrate): each version's SQL records itself in
// leakless_migrations, so CheckSchema passes after it as after Migrate.
// SchemaSQL is every version as one script. Building the store does not
// connect.
func ExamplePostgres_Migrations() {
	db, err := sql.Open("pgx", "postgres://127.0.0.1/app")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st, err := store.NewSQL(db, workspaces, store.WithSchema("leakless"))
	if err != nil {
		log.Fatal(err)
	}
	ms := st.Migrations()
	for _, m := range ms {
		fmt.Printf("%03d_%s.sql\n", m.Version, m.Name)
	}
	fmt.Print(ms[1].SQL)
	// Output:
	// 001_initial.sql
	// 002_operator_state.sql
	// ALTER TABLE "leakless"."leakless_attempts"
	//     ADD COLUMN IF NOT EXISTS first_at        timestamptz NOT NULL DEFAULT now(),
	//     ADD COLUMN IF NOT EXISTS permanent       boolean     NOT NULL DEFAULT false,
	//     ADD COLUMN IF NOT EXISTS acknowledged_at timestamptz;
	//
	// INSERT INTO "leakless"."leakless_migrations" (component, version, name) VALUES ('store:workspaces', 2, 'operator_state') ON CONFLICT (component, version) DO NOTHING;
}

// Bad configuration is an error from the constructor, never a failure at
// the first query.
func ExampleNewSQL_badTable() {
	bad := workspaces
	bad.Status = "status; DROP TABLE workspaces"
	_, err := store.NewSQL(&sql.DB{}, bad)
	fmt.Println(errors.Is(err, store.ErrConfig))
	// Output: true
}

// Wiring with a pgx pool: migrate at start-up, and elect one sweeping
// replica with a lease.
func ExampleNewPgx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := store.NewPgx(pool, workspaces)
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	lease := st.Lease("leakless-sweeper", time.Minute)
	defer lease.Release(ctx)
	if leading, err := lease.Lead(ctx); err == nil && leading {
		pending, _ := st.Pending(ctx, 100)
		fmt.Println(len(pending), "rows to re-drive")
	}
}
