package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leakless/leakless/internal/pgtest"
)

// removeTreeResult is what a RemoveTree running in the background
// returned.
type removeTreeResult struct {
	held []Pending
	err  error
}

// removeTreeBlocked starts RemoveTree(root) and returns once it waits for
// a row lock some host transaction holds.
func removeTreeBlocked(t *testing.T, st *Postgres, db *pgtest.DB, root string) <-chan removeTreeResult {
	t.Helper()
	ctx := context.Background()
	done := make(chan removeTreeResult, 1)
	go func() {
		held, err := st.RemoveTree(ctx, root)
		done <- removeTreeResult{held, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%leakless_attempts%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatal("RemoveTree never waited for the host's row lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hostTx begins a host transaction and runs stmts in it; the test commits
// it. It is rolled back at cleanup if the test does not.
func hostTx(t *testing.T, db *pgtest.DB, stmts ...string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return tx
}

// wantHeld checks that r is exactly the holders want (id → instance) and
// that every one of those rows is removed.
func wantHeld(t *testing.T, db *pgtest.DB, r removeTreeResult, want map[string]string) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("RemoveTree: %v", r.err)
	}
	got := map[string]string{}
	for _, p := range r.held {
		got[p.ResourceID] = p.InstanceID
	}
	if len(got) != len(want) {
		t.Fatalf("RemoveTree returned %v; want %v", got, want)
	}
	for id, inst := range want {
		if got[id] != inst {
			t.Fatalf("RemoveTree returned %v; want %v", got, want)
		}
		var status string
		if err := db.Pool.QueryRow(context.Background(), `SELECT status FROM workspaces WHERE id = $1`, id).Scan(&status); err != nil || status != "removed" {
			t.Fatalf("row %s status = %q, %v; want removed", id, status, err)
		}
	}
}

// The host records an instance on a row (the launch finished) while a
// delete of its tree waits for that row's lock. RemoveTree must return the
// instance the row holds once the lock is granted, not the one its snapshot
// saw before it waited: otherwise the delete reports success while the
// removed row still holds a running instance.
func TestPostgresRemoveTreeSeesAnInstanceRecordedWhileItWaited(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			st, db := openOn(t, driver)
			if _, err := db.Pool.Exec(context.Background(), `INSERT INTO workspaces (id, parent_id, status, instance_id) VALUES
				('root', NULL, 'running', 'i-root'), ('child', 'root', 'provisioning', NULL)`); err != nil {
				t.Fatal(err)
			}
			tx := hostTx(t, db, `UPDATE workspaces SET instance_id = 'i-child', status = 'running'
				WHERE id = 'child' AND status = 'provisioning'`)
			done := removeTreeBlocked(t, st, db, "root")
			if err := tx.Commit(context.Background()); err != nil {
				t.Fatal(err)
			}
			wantHeld(t, db, <-done, map[string]string{"root": "i-root", "child": "i-child"})
		})
	}
}

// The host creates a child under a parent it has checked is live, holding
// the parent's row lock (FOR SHARE, or the FOR KEY SHARE a foreign key
// takes) until it commits. A delete of the tree waits on that lock; the
// child committed meanwhile is newer than the statement's snapshot, and
// must still be removed and its instance returned, or it stays live under
// a removed root.
func TestPostgresRemoveTreeSeesAChildCommittedWhileItWaited(t *testing.T) {
	for _, variant := range []struct {
		name  string
		setup string   // run on the host table first
		tx    []string // the host's transaction
	}{
		{"for share", ``, []string{
			`SELECT 1 FROM workspaces WHERE id = 'root' AND status <> 'removed' FOR SHARE`,
			`INSERT INTO workspaces (id, parent_id, status, instance_id) VALUES ('child', 'root', 'running', 'i-child')`,
		}},
		{"foreign key", `ALTER TABLE workspaces ADD FOREIGN KEY (parent_id) REFERENCES workspaces (id)`, []string{
			`INSERT INTO workspaces (id, parent_id, status, instance_id) VALUES ('child', 'root', 'running', 'i-child')`,
			// A grandchild too: found only by walking from the new child.
			`INSERT INTO workspaces (id, parent_id, status, instance_id) VALUES ('grandchild', 'child', 'running', 'i-grandchild')`,
		}},
	} {
		for _, driver := range drivers {
			t.Run(variant.name+"/"+driver, func(t *testing.T) {
				db := pgtest.Open(t)
				createHostTable(t, db.Pool, "text")
				ctx := context.Background()
				if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id) VALUES ('root', 'running', 'i-root')`); err != nil {
					t.Fatal(err)
				}
				if variant.setup != "" {
					if _, err := db.Pool.Exec(ctx, variant.setup); err != nil {
						t.Fatal(err)
					}
				}
				st := newStoreOn(t, driver, db, testTable(true))
				tx := hostTx(t, db, variant.tx...)
				done := removeTreeBlocked(t, st, db, "root")
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				want := map[string]string{"root": "i-root", "child": "i-child"}
				if variant.name == "foreign key" {
					want["grandchild"] = "i-grandchild"
				}
				wantHeld(t, db, <-done, want)
			})
		}
	}
}
