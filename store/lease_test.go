package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/pgtest"
)

// forEachDriver runs test with a migrated store through pgx, through pgx
// without prepared statements (as behind a transaction pooler), and
// through database/sql.
func forEachDriver(t *testing.T, test func(t *testing.T, st *Postgres)) {
	for _, driver := range []string{"pgx", "pgx-simple-protocol", "sql"} {
		t.Run(driver, func(t *testing.T) {
			db := pgtest.Open(t)
			createHostTable(t, db.Pool, "text")
			var st *Postgres
			var err error
			switch driver {
			case "pgx":
				st, err = NewPgx(db.Pool, testTable(true))
			case "pgx-simple-protocol":
				st, err = NewPgx(simpleProtocolPool(t, db), testTable(true))
			default:
				st, err = NewSQL(db.SQL, testTable(true))
			}
			test(t, migrated(t, st, err))
		})
	}
}

func mustLead(t *testing.T, l *Lease) (leaseGrant, bool) {
	t.Helper()
	g, ok, err := l.lead(context.Background())
	if err != nil {
		t.Fatalf("Lead: %v", err)
	}
	return g, ok
}

// Two contenders with a short ttl, each sometimes pausing past it so the
// lease changes hands many times: the database-clock windows in which each
// believed it led never overlap.
func TestLeaseOneHolderAtATime(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st *Postgres) {
		const ttl = 30 * time.Millisecond
		type grant struct {
			holder int
			leaseGrant
		}
		var (
			mu     sync.Mutex
			grants []grant
			errs   []error
			wg     sync.WaitGroup
		)
		for holder := range 2 {
			l := st.Lease("sweeper", ttl)
			wg.Go(func() {
				for i := range 40 {
					g, ok, err := l.lead(context.Background())
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					}
					if ok {
						grants = append(grants, grant{holder, g})
					}
					mu.Unlock()
					pause := 5 * time.Millisecond
					if ok && i%3 == 0 {
						pause = ttl + 10*time.Millisecond // stop renewing for a while
					}
					time.Sleep(pause) // pacing, not an assertion
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("Lead errors: %v", errs)
		}
		handovers, held := 0, [2]bool{}
		for i, a := range grants {
			held[a.holder] = true
			for _, b := range grants[i+1:] {
				if a.holder != b.holder && a.from.Before(b.until) && b.from.Before(a.until) {
					t.Fatalf("holder %d led [%v, %v] (term %d) while holder %d led [%v, %v] (term %d)",
						a.holder, a.from, a.until, a.term, b.holder, b.from, b.until, b.term)
				}
				if a.term == b.term && a.holder != b.holder {
					t.Fatalf("term %d granted to both holders", a.term)
				}
			}
			if i > 0 && grants[i-1].holder != a.holder {
				handovers++
			}
		}
		t.Logf("%d grants, %d handovers", len(grants), handovers)
		if !held[0] || !held[1] || handovers < 3 {
			t.Fatalf("%d grants, %d handovers, holders %v: the lease never really changed hands", len(grants), handovers, held)
		}
	})
}

// A holder that stops renewing loses the lease once its ttl has passed,
// by the database's clock, and not before.
func TestLeaseTakenOverAfterTTL(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st *Postgres) {
		const ttl = 300 * time.Millisecond
		a, b := st.Lease("sweeper", ttl), st.Lease("sweeper", ttl)
		ga, ok := mustLead(t, a)
		if !ok {
			t.Fatal("first contender's Lead = false, want true")
		}
		if _, ok := mustLead(t, b); ok {
			t.Fatal("second contender leads while the first's lease is fresh")
		}
		deadline := time.Now().Add(10 * time.Second)
		var gb leaseGrant
		for {
			if gb, ok = mustLead(t, b); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("second contender never took over the abandoned lease")
			}
			time.Sleep(20 * time.Millisecond) // pacing, not an assertion
		}
		if gb.from.Before(ga.until) {
			t.Fatalf("took over at %v, before the first holder's lease expired at %v", gb.from, ga.until)
		}
		if gb.term != ga.term+1 {
			t.Fatalf("new holder's term %d, want %d", gb.term, ga.term+1)
		}
		if _, ok := mustLead(t, a); ok {
			t.Fatal("the first holder leads again while the new holder's lease is fresh")
		}
	})
}

func TestLeaseRenewalKeepsTerm(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st *Postgres) {
		l := st.Lease("sweeper", time.Hour)
		g1, ok1 := mustLead(t, l)
		g2, ok2 := mustLead(t, l)
		if !ok1 || !ok2 {
			t.Fatalf("Lead, Lead = %v, %v; want true, true", ok1, ok2)
		}
		if g2.term != g1.term || g2.until.Before(g1.until) {
			t.Fatalf("renewal: term %d → %d, until %v → %v; want the same term, extended", g1.term, g2.term, g1.until, g2.until)
		}
		if _, ok := mustLead(t, st.Lease("other-name", time.Hour)); !ok {
			t.Fatal("a lease of another name is not free")
		}
	})
}

func TestLeaseReleaseHandsOverAtOnce(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st *Postgres) {
		ctx := context.Background()
		a, b := st.Lease("sweeper", time.Hour), st.Lease("sweeper", time.Hour)
		if _, ok := mustLead(t, a); !ok {
			t.Fatal("Lead = false, want true")
		}
		if err := b.Release(ctx); err != nil {
			t.Fatalf("Release by a non-holder: %v", err)
		}
		if _, ok := mustLead(t, b); ok {
			t.Fatal("a non-holder's Release freed the lease")
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := mustLead(t, b); !ok {
			t.Fatal("Lead after the holder released = false, want true")
		}
		if _, ok := mustLead(t, a); ok {
			t.Fatal("the releasing holder leads again")
		}
	})
}
