package store

import (
	"context"
	"testing"
	"time"
)

// The host records an instance on a row (the launch finished) while a
// delete of its tree waits for that row's lock. RemoveTree must return the
// instance the row holds once the lock is granted, not the one its snapshot
// saw before it waited: otherwise the delete reports success while the
// removed row still holds a running instance.
func TestPostgresRemoveTreeSeesAnInstanceRecordedWhileItWaited(t *testing.T) {
	st, db := newPgxStore(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, parent_id, status, instance_id) VALUES
		('root', NULL, 'running', 'i-root'), ('child', 'root', 'provisioning', NULL)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `UPDATE workspaces SET instance_id = 'i-child', status = 'running'
		WHERE id = 'child' AND status = 'provisioning'`); err != nil {
		t.Fatal(err)
	}

	type result struct {
		held []Pending
		err  error
	}
	done := make(chan result, 1)
	go func() {
		held, err := st.RemoveTree(ctx, "root")
		done <- result{held, err}
	}()
	// Wait until RemoveTree is blocked on the row lock the host holds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%leakless_attempts%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("RemoveTree never waited for the host's row lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	r := <-done
	if r.err != nil {
		t.Fatalf("RemoveTree: %v", r.err)
	}
	got := map[string]string{}
	for _, p := range r.held {
		got[p.ResourceID] = p.InstanceID
	}
	if len(got) != 2 || got["root"] != "i-root" || got["child"] != "i-child" {
		t.Fatalf("RemoveTree returned %v; want root→i-root and child→i-child", got)
	}
	var status string
	if err := db.Pool.QueryRow(ctx, `SELECT status FROM workspaces WHERE id = 'child'`).Scan(&status); err != nil || status != "removed" {
		t.Fatalf("child status = %q, %v; want removed", status, err)
	}
}
