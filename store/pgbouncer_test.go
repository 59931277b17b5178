package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/pgtest"
)

// Behind PgBouncer in transaction mode, every call's transaction may land
// on another server connection. pgx's default exec mode prepares and
// caches statements per connection, and those are gone (or taken) on the
// next server connection; the modes that prepare nothing across
// transactions work.
func TestPgBouncerTransactionMode(t *testing.T) {
	through := pgtest.Bouncer(t)
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")

	t.Run("default exec mode fails", func(t *testing.T) {
		failed, calls := bouncerWorkload(t, db, through, "")
		if failed == 0 {
			t.Fatalf("%d calls through PgBouncer in pgx's default exec mode all succeeded; want prepared statements to fail", calls)
		}
		t.Logf("pgx's default exec mode: %d of %d calls failed", failed, calls)
	})
	for _, mode := range []string{"simple_protocol", "exec", "cache_describe"} {
		t.Run(mode, func(t *testing.T) {
			if failed, calls := bouncerWorkload(t, db, through, mode); failed != 0 {
				t.Fatalf("default_query_exec_mode=%s: %d of %d calls failed", mode, failed, calls)
			}
		})
	}
}

// bouncerWorkload drives every call of the store through the URL in the
// given exec mode ("" for pgx's default), from 8 goroutines at once on
// rows of their own, and returns how many calls failed of how many made.
// With no failure it also checks that the work was done.
func bouncerWorkload(t *testing.T, db *pgtest.DB, through, mode string) (failed, calls int64) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.BouncerPool(t, through, mode)
	tbl := testTable(true)
	tbl.Name = db.Schema + ".workspaces"
	st, err := NewPgx(pool, tbl, WithSchema(db.Schema), WithRedriveGrace(0))
	if err != nil {
		t.Fatal(err)
	}
	// Migrate runs through PgBouncer too: a transaction of statements
	// without arguments.
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate through PgBouncer: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, `TRUNCATE workspaces; TRUNCATE leakless_attempts`); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 6
	prefix := "m" + mode
	for w := range workers {
		for r := range rounds {
			id := fmt.Sprintf("%s-%d-%d", prefix, w, r)
			if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, parent_id, status, instance_id) VALUES ($1, NULL, 'active', $2), ($1 || '-c', $1, 'active', $2 || '-c')`,
				id, "i-"+id); err != nil {
				t.Fatal(err)
			}
		}
	}
	var nFailed, nCalls atomic.Int64
	var firstErr atomic.Value
	call := func(err error) bool {
		nCalls.Add(1)
		if err != nil {
			nFailed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
		return err == nil
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			lease := st.Lease(fmt.Sprintf("%s-%d", prefix, w%2), time.Minute)
			for r := range rounds {
				id := fmt.Sprintf("%s-%d-%d", prefix, w, r)
				held, err := st.RemoveTree(ctx, id)
				if !call(err) {
					continue
				}
				for i, p := range held {
					if i == 0 {
						_, err := st.Reaped(ctx, p)
						call(err)
					} else {
						call(st.Failed(ctx, p, errors.New("throttled"), 0))
					}
				}
				_, err = st.Pending(ctx, 10)
				call(err)
				_, err = st.Known(ctx, []string{id}, []string{"i-" + id})
				call(err)
				_, err = lease.Lead(ctx)
				call(err)
				call(lease.Release(ctx))
				_, err = st.Stats(ctx)
				call(err)
				call(st.CheckSchema(ctx))
			}
		})
	}
	wg.Wait()
	failed, calls = nFailed.Load(), nCalls.Load()
	if failed > 0 {
		t.Logf("first failure: %v", firstErr.Load())
		return failed, calls
	}
	// Every root was reaped and every child is pending with one attempt.
	var reaped, pending int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE instance_id IS NULL), count(*) FILTER (WHERE instance_id IS NOT NULL)
		FROM workspaces WHERE status = 'removed' AND id LIKE $1`, prefix+"-%").Scan(&reaped, &pending); err != nil {
		t.Fatal(err)
	}
	if reaped != workers*rounds || pending != workers*rounds {
		t.Fatalf("after the workload: %d rows reaped and %d pending, want %d each", reaped, pending, workers*rounds)
	}
	return failed, calls
}
