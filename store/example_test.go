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

// SchemaSQL is what Migrate runs, for hosts that apply migrations with
// their own tools. Building the store does not connect.
func ExamplePostgres_SchemaSQL() {
	db, err := sql.Open("pgx", "postgres://127.0.0.1/app")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st, err := store.NewSQL(db, workspaces, store.WithSchema("leakless"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(st.SchemaSQL())
	// Output:
	// CREATE SCHEMA IF NOT EXISTS "leakless";
	//
	// CREATE TABLE IF NOT EXISTS "leakless"."leakless_attempts" (
	//     host_table      text        NOT NULL,
	//     resource_id     text        NOT NULL,
	//     instance_id     text        NOT NULL,
	//     attempts        integer     NOT NULL,
	//     last_error      text        NOT NULL,
	//     last_at         timestamptz NOT NULL,
	//     next_at         timestamptz,
	//     not_found_since timestamptz,
	//     PRIMARY KEY (host_table, resource_id)
	// );
	//
	// ALTER TABLE "leakless"."leakless_attempts"
	//     ADD COLUMN IF NOT EXISTS not_found_since timestamptz;
	//
	// CREATE TABLE IF NOT EXISTS "leakless"."leakless_leases" (
	//     name       text        PRIMARY KEY,
	//     holder     text        NOT NULL,
	//     term       bigint      NOT NULL,
	//     expires_at timestamptz NOT NULL
	// );
	//
	// CREATE INDEX IF NOT EXISTS "leakless_unreaped_workspaces"
	//     ON "workspaces" ("id", "instance_id")
	//     WHERE "status" = 'removed' AND "instance_id" IS NOT NULL AND "instance_id" <> '';
	//
	// DROP INDEX IF EXISTS "leakless_pending_workspaces";
	//
	// CREATE INDEX IF NOT EXISTS "leakless_provisioning_workspaces"
	//     ON "workspaces" ("id")
	//     WHERE "status" IS DISTINCT FROM 'removed' AND ("instance_id" IS NULL OR "instance_id" = '');
	//
	// CREATE INDEX IF NOT EXISTS "leakless_removed_workspaces"
	//     ON "workspaces" (lower("id"::text))
	//     WHERE "status" = 'removed';
	//
	// UPDATE "leakless"."leakless_attempts" SET next_at = last_at WHERE next_at IS NULL;
	//
	// CREATE INDEX IF NOT EXISTS leakless_attempts_untried
	//     ON "leakless"."leakless_attempts" (host_table, next_at, resource_id) WHERE attempts = 0;
	//
	// CREATE INDEX IF NOT EXISTS leakless_attempts_tried
	//     ON "leakless"."leakless_attempts" (host_table, next_at, resource_id) WHERE attempts > 0;
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
