package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// A host that gives rows new instances while a page's clears are being
// written loses nothing: a row is cleared only if it still held the
// instance the page read, and a row the host changed keeps its new one.
func TestPostgresReapedAllRacingHostUpdates(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			db := pgtest.Open(t)
			createHostTable(t, db.Pool, "text")
			st := newStoreOn(t, driver, db, testTable(true))
			ctx := context.Background()
			const n = 400
			insertRemoved(t, db.Pool, 1, n)
			ps := mustPending(t, st, n)
			done := make(chan error, 1)
			go func() {
				// Every third row gets a new instance, one statement each,
				// while the clears run.
				for i := 1; i <= n; i += 3 {
					if _, err := db.Pool.Exec(ctx, `UPDATE workspaces SET instance_id = 'i-new-' || id WHERE id = $1`, wsID(i)); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			var cleared []bool
			for page := range slices.Chunk(ps, 50) {
				c, err := st.ReapedAll(ctx, page)
				if err != nil {
					t.Fatal(err)
				}
				cleared = append(cleared, c...)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// A row the host changed holds its new instance, whether the
			// change came before the clear (which then matched nothing) or
			// after it; every other row is cleared.
			for i, p := range ps {
				var inst *string
				if err := db.Pool.QueryRow(ctx, `SELECT instance_id FROM workspaces WHERE id = $1`, p.ResourceID).Scan(&inst); err != nil {
					t.Fatal(err)
				}
				changed := (i+1)%3 == 1
				switch {
				case changed && (inst == nil || *inst != "i-new-"+p.ResourceID):
					t.Fatalf("%s: the host gave it a new instance, yet it holds %v", p.ResourceID, inst)
				case !changed && (!cleared[i] || inst != nil):
					t.Fatalf("%s: cleared = %v, holds %v; want cleared and NULL", p.ResourceID, cleared[i], inst)
				}
			}
			// Rows the host changed are pending for their new instance.
			for _, p := range mustPending(t, st, n) {
				if p.InstanceID != "i-new-"+p.ResourceID {
					t.Fatalf("Pending after the race lists %+v, want only rows with the host's new instance", p)
				}
			}
		})
	}
}

// Paging through a backlog while the host removes more rows and takes
// some back: every row that stays removed is drained, each once per
// instance, and no row the host took back while it still held its
// instance is cleared.
func TestPostgresPagingWhileRowsComeAndGo(t *testing.T) {
	st, db := newPgxStore(t, WithRescanInterval(0))
	ctx := context.Background()
	insertRemoved(t, db.Pool, 1, 600)
	done := make(chan error, 1)
	var takenBack []string
	go func() {
		for i := 0; i < 30; i++ {
			// Ten more removed rows, and one of them made live again
			// unless the drain has cleared it already.
			if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id)
				SELECT format('ws-%s', lpad(g::text, 6, '0')), 'removed', format('i-%s', lpad(g::text, 6, '0'))
				FROM generate_series($1::int, $1::int + 9) g`, 1000+10*i); err != nil {
				done <- err
				return
			}
			rows, err := db.Pool.Query(ctx, `UPDATE workspaces SET status = 'active'
				WHERE id = $1 AND instance_id IS NOT NULL RETURNING id`, wsID(1000+10*i+5))
			if err != nil {
				done <- err
				return
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				done <- err
				return
			}
			takenBack = append(takenBack, ids...)
		}
		done <- nil
	}()
	seen := map[Pending]bool{}
	finished := false
	for rounds := 0; rounds < 1000; rounds++ {
		ps := mustPending(t, st, 50)
		if len(ps) == 0 {
			if finished {
				break
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			finished = true
			continue
		}
		for _, p := range ps {
			key := Pending{ResourceID: p.ResourceID, InstanceID: p.InstanceID}
			if seen[key] {
				t.Fatalf("%+v returned again after it was cleared", p)
			}
			seen[key] = true
		}
		if _, err := st.ReapedAll(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	var left, wronglyCleared int
	if err := db.Pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE status = 'removed' AND instance_id IS NOT NULL),
			count(*) FILTER (WHERE id = ANY ($1) AND instance_id IS NULL)
		FROM workspaces`, takenBack).Scan(&left, &wronglyCleared); err != nil {
		t.Fatal(err)
	}
	if left != 0 || wronglyCleared != 0 || len(takenBack) == 0 {
		t.Fatalf("after the drain: %d removed rows still hold an instance, %d of the %d rows taken back lost theirs; want 0, 0 of some", left, wronglyCleared, len(takenBack))
	}
	if want := 600 + 300 - len(takenBack); len(seen) < want {
		t.Fatalf("drained %d rows, want at least %d", len(seen), want)
	}
}
