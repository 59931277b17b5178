package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/internal/pgtest"
)

// insertRemoved inserts n removed rows holding instances, ids ws-<from> to
// ws-<from+n-1>, zero-padded so their text order is their number's.
func insertRemoved(t *testing.T, pool *pgxpool.Pool, from, n int) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `INSERT INTO workspaces (id, status, instance_id)
		SELECT format('ws-%s', lpad(g::text, 6, '0')), 'removed', format('i-%s', lpad(g::text, 6, '0'))
		FROM generate_series($1::int, $2::int) g`, from, from+n-1); err != nil {
		t.Fatal(err)
	}
}

func wsID(n int) string { return fmt.Sprintf("ws-%06d", n) }

// A row a host removed with its own UPDATE is found however many rows
// backing off come before it in id order: the first short page reads the
// whole index.
func TestPostgresPendingFindsRowsBehindABacklogThatBacksOff(t *testing.T) {
	st, db := newPgxStore(t)
	ctx := context.Background()
	insertRemoved(t, db.Pool, 1, 1000)
	for page := 0; page < 2; page++ {
		ps := mustPending(t, st, 500)
		fs := make([]Failure, len(ps))
		for i, p := range ps {
			fs[i] = Failure{Pending: p, Err: errors.New("throttled"), Delay: time.Hour}
		}
		if err := st.FailedAll(ctx, fs); err != nil {
			t.Fatal(err)
		}
	}
	insertRemoved(t, db.Pool, 1001, 3)
	fresh, err := NewPgx(db.Pool, testTable(true)) // a replica that starts now
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Postgres{"the store that walked": st, "a new store": fresh} {
		wantIDs(t, name, mustPending(t, s, 500), wsID(1001), wsID(1002), wsID(1003))
	}
}

// Within the rescan interval a short page reads one stretch on, not the
// whole index: a backlog that is mostly backing off is not read on every
// call. The stretches still cover the index, call after call.
func TestPostgresPendingWalksOnWithinTheRescanInterval(t *testing.T) {
	st, db := newPgxStore(t, WithRescanInterval(time.Hour))
	ctx := context.Background()
	insertRemoved(t, db.Pool, 1, 1000)
	ps := mustPending(t, st, 1000) // the first call reads everything
	fs := make([]Failure, len(ps))
	for i, p := range ps {
		fs[i] = Failure{Pending: p, Err: errors.New("throttled"), Delay: time.Hour}
	}
	if err := st.FailedAll(ctx, fs); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "Pending with every row backing off", mustPending(t, st, 10))
	insertRemoved(t, db.Pool, 1001, 1)
	// Pending(10) reads 100 entries a call: the walk is past ws-000100 and
	// reaches ws-001001 within ten calls, not on the first.
	calls := 0
	for ; calls < 20; calls++ {
		if ps := mustPending(t, st, 10); len(ps) > 0 {
			wantIDs(t, "Pending once the walk reaches the new row", ps, wsID(1001))
			break
		}
	}
	if calls == 0 || calls >= 20 {
		t.Fatalf("the new row was found after %d empty calls, want between 1 and 19", calls)
	}
}

// A page's rows are recorded by one statement, each still a compare-and-set
// of its own: a row the host changed in between is neither cleared nor
// given a record, and a row that is no longer removed records no failure.
func TestPostgresBatchesKeepTheCompareAndSetPerRow(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			db := pgtest.Open(t)
			createHostTable(t, db.Pool, "text")
			st := newStoreOn(t, driver, db, testTable(true))
			ctx := context.Background()
			insertRemoved(t, db.Pool, 1, 4)
			ps := mustPending(t, st, 10)
			if len(ps) != 4 {
				t.Fatalf("Pending = %+v, want 4 rows", ps)
			}
			exec(t, db.Pool, `UPDATE workspaces SET instance_id = 'i-new' WHERE id = $1`, wsID(2))
			exec(t, db.Pool, `UPDATE workspaces SET status = 'active' WHERE id = $1`, wsID(4))
			cleared, err := st.ReapedAll(ctx, ps[:2])
			if err != nil || !slices.Equal(cleared, []bool{true, false}) {
				t.Fatalf("ReapedAll = %v, %v; want [true false]: row 2 holds another instance now", cleared, err)
			}
			if err := st.FailedAll(ctx, []Failure{
				{Pending: ps[2], Err: errors.New("throttled"), Delay: time.Hour},
				{Pending: ps[3], Err: errors.New("throttled"), Delay: time.Hour},
			}); err != nil {
				t.Fatal(err)
			}
			var recorded []string
			rows, err := db.Pool.Query(ctx, `SELECT resource_id FROM leakless_attempts WHERE attempts > 0 ORDER BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				recorded = append(recorded, id)
			}
			if !slices.Equal(recorded, []string{wsID(3)}) {
				t.Fatalf("failures recorded for %v, want only %s: row 4 is live again", recorded, wsID(3))
			}
			wantIDs(t, "Pending after the page", mustPending(t, st, 10), wsID(2))
		})
	}
}

// A record left behind by a host that cleared its row itself is skipped,
// and deleted once a walk has read the whole index.
func TestPostgresPendingPurgesStaleRecords(t *testing.T) {
	st, db := newPgxStore(t, WithRescanInterval(0))
	ctx := context.Background()
	insertRemoved(t, db.Pool, 1, 3)
	ps := mustPending(t, st, 10)
	if err := st.FailedAll(ctx, []Failure{
		{Pending: ps[0], Err: errors.New("throttled")},
		{Pending: ps[1], Err: errors.New("throttled")},
	}); err != nil {
		t.Fatal(err)
	}
	exec(t, db.Pool, `UPDATE workspaces SET instance_id = NULL WHERE id = $1`, wsID(1))
	wantIDs(t, "Pending", mustPending(t, st, 10), wsID(3), wsID(2))
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM leakless_attempts WHERE resource_id = $1`, wsID(1)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d records left for the cleared row, want 0", n)
	}
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
