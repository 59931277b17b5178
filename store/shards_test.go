package store

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/pgdriver"
	"github.com/leakless/leakless/internal/pgtest"
)

// shardGroup runs replicas of one shard group against one database, each
// replica calling Lead on every shard every third of the ttl, as a
// sweeper per shard does, and records every answer for the overlap check.
type shardGroup struct {
	t      *testing.T
	stores []*Postgres // one per driver; replica i uses stores[i%len]
	shards []string
	ttl    time.Duration

	mu      sync.Mutex
	answers []shardAnswer
	errs    []error
}

// shardAnswer is one Lead's answer, with the database's clock at it.
type shardAnswer struct {
	replica int
	shard   string
	leading bool
	grant   leaseGrant // from is the statement's now(); until the expiry it set
}

type shardReplica struct {
	s      *Shards
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start starts replica number i.
func (g *shardGroup) start(i int) *shardReplica {
	ctx, cancel := context.WithCancel(context.Background())
	r := &shardReplica{s: g.stores[i%len(g.stores)].Shards("sweeper", g.shards, g.ttl), cancel: cancel}
	for _, shard := range g.shards {
		l := r.s.Lease(shard)
		r.wg.Go(func() {
			for {
				gr, ok, err := l.lead(ctx)
				if ctx.Err() != nil {
					return
				}
				g.mu.Lock()
				if err != nil {
					g.errs = append(g.errs, err)
				} else {
					g.answers = append(g.answers, shardAnswer{i, shard, ok, gr})
				}
				g.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-time.After(g.ttl / 3): // a sweeper's renewal rhythm
				}
			}
		})
	}
	return r
}

// kill stops the replica calling Lead, without releasing anything, as a
// crash would.
func (r *shardReplica) kill() {
	r.cancel()
	r.wg.Wait()
}

// leaders is how many shards each replica's holder leads, by the
// database's clock, and how many shards have a leader at all.
func (g *shardGroup) leaders(replicas map[int]*shardReplica) (map[int]int, int) {
	g.t.Helper()
	byHolder := map[string]int{}
	for i, r := range replicas {
		byHolder[r.s.holder] = i
	}
	count, led := map[int]int{}, 0
	err := g.stores[0].db.Query(context.Background(),
		`SELECT holder FROM `+g.stores[0].names.leases+` WHERE starts_with(name, 'sweeper/shard/') AND expires_at > now()`, nil,
		func(r pgdriver.Row) error {
			var holder string
			if err := r.Scan(&holder); err != nil {
				return err
			}
			i, ok := byHolder[holder]
			if !ok {
				i = -1 // a replica no longer listed: killed, lease not yet expired
			}
			count[i]++
			led++
			return nil
		})
	if err != nil {
		g.t.Fatal(err)
	}
	return count, led
}

// await polls until every shard is led and each of replicas leads want of
// them, failing after within. Once there, it checks that the spread holds
// for two renewal rounds. Every sample, before and after, must have no replica
// leading more than most (0: no bound yet). It returns how long the spread
// took to reach.
func (g *shardGroup) await(what string, replicas map[int]*shardReplica, want map[int]int, most int, within time.Duration) time.Duration {
	g.t.Helper()
	start := time.Now()
	check := func() bool {
		count, led := g.leaders(replicas)
		for i, n := range count {
			if most > 0 && n > most {
				g.t.Fatalf("%s: replica %d leads %d shards, more than ⌈S/R⌉ = %d (%v)", what, i, n, most, count)
			}
		}
		return led == len(g.shards) && maps.Equal(count, want)
	}
	for !check() {
		if time.Since(start) > within {
			count, led := g.leaders(replicas)
			g.t.Fatalf("%s: after %v, %d of %d shards led, %v; want %v", what, within, led, len(g.shards), count, want)
		}
		time.Sleep(5 * time.Millisecond) // polling, not an assertion
	}
	took := time.Since(start)
	for end := time.Now().Add(2 * g.ttl / 3); time.Now().Before(end); time.Sleep(10 * time.Millisecond) { // two renewal rounds
		if !check() {
			count, _ := g.leaders(replicas)
			g.t.Fatalf("%s: the spread %v did not hold: %v", what, want, count)
		}
	}
	return took
}

// overlaps checks that no two replicas believed they led one shard at
// once, by the database's clock: each leading answer holds from its
// statement's now() to the expiry it set, or until the same replica's
// next answer for the shard said it no longer leads (a release).
func (g *shardGroup) overlaps() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) > 0 {
		g.t.Fatalf("Lead errors: %v", g.errs)
	}
	type window struct {
		replica  int
		from, to time.Time
	}
	windows := map[string][]window{}
	open := map[[2]any]int{} // (replica, shard) → index of its open window
	for _, a := range g.answers {
		key := [2]any{a.replica, a.shard}
		ws := windows[a.shard]
		if j, ok := open[key]; ok && ws[j].to.After(a.grant.from) {
			ws[j].to = a.grant.from // renewed or released here
		}
		delete(open, key)
		if a.leading {
			open[key] = len(ws)
			ws = append(ws, window{a.replica, a.grant.from, a.grant.until})
		}
		windows[a.shard] = ws
	}
	handovers := 0
	for shard, ws := range windows {
		for i, a := range ws {
			for _, b := range ws[i+1:] {
				if a.replica != b.replica && a.from.Before(b.to) && b.from.Before(a.to) {
					g.t.Fatalf("shard %q: replica %d led [%v, %v) while replica %d led [%v, %v)", shard, a.replica, a.from, a.to, b.replica, b.from, b.to)
				}
			}
			if i > 0 && ws[i-1].replica != a.replica {
				handovers++
			}
		}
	}
	g.t.Logf("%d answers, %d handovers", len(g.answers), handovers)
}

// Six shards, replicas on three drivers (pgx, pgx without prepared
// statements, database/sql) sharing one database: three replicas settle
// at two shards each; a killed replica's shards go to the others within
// the ttl and a renewal, and no one leads more than three; the last
// replica standing leads all six; a replica that joins takes its share
// from one that had more; one that leaves hands its shards over at once.
// Throughout, no shard has two leaders by the database's clock.
func TestShardsSpreadAndTakeOver(t *testing.T) {
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")
	var stores []*Postgres
	for _, open := range []func() (*Postgres, error){
		func() (*Postgres, error) { return NewPgx(db.Pool, testTable(false)) },
		func() (*Postgres, error) { return NewPgx(simpleProtocolPool(t, db), testTable(false)) },
		func() (*Postgres, error) { return NewSQL(db.SQL, testTable(false)) },
	} {
		st, err := open()
		stores = append(stores, migrated(t, st, err))
	}
	const ttl = 300 * time.Millisecond
	renew := ttl / 3
	g := &shardGroup{t: t, stores: stores, shards: []string{"", "eu-west-1", "us-east-1", "us-west-2", "111122223333/us-east-1", "111122223333/eu-west-1"}, ttl: ttl}
	replicas := map[int]*shardReplica{}
	defer func() {
		for _, r := range replicas {
			r.kill()
		}
	}()

	for i := range 3 {
		replicas[i] = g.start(i)
	}
	took := g.await("three replicas", replicas, map[int]int{0: 2, 1: 2, 2: 2}, 0, 5*ttl)
	t.Logf("three replicas: 2 shards each after %v", took)

	// A crash: replica 0 stops calling Lead and releases nothing. Its
	// leases and membership expire a ttl after its last Lead; the others'
	// share is then 3, and each takes one at its next renewal.
	replicas[0].kill()
	delete(replicas, 0)
	bound := ttl + renew + 150*time.Millisecond // slack for a loaded machine and the race detector
	took = g.await("replica 0 killed", replicas, map[int]int{1: 3, 2: 3}, 3, bound)
	t.Logf("replica 0 killed: its shards taken over after %v (ttl %v, renewal %v)", took, ttl, renew)

	replicas[1].kill()
	delete(replicas, 1)
	took = g.await("replica 1 killed", replicas, map[int]int{2: 6}, 6, bound)
	t.Logf("replica 1 killed: replica 2 leads all six after %v", took)

	// A replica joins: replica 2, over its new share of 3, gives one shard
	// up at each renewal until it is within it, and replica 3 takes them.
	replicas[3] = g.start(3)
	took = g.await("replica 3 joined", replicas, map[int]int{2: 3, 3: 3}, 6, 3*ttl)
	t.Logf("replica 3 joined: 3 each after %v", took)
	g.overlaps()

	// Replica 2 stops and leaves: replica 3 takes everything at its next
	// renewal, without waiting out the ttl.
	replicas[2].kill()
	if err := replicas[2].s.Leave(context.Background()); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	delete(replicas, 2)
	took = g.await("replica 2 left", replicas, map[int]int{3: 6}, 6, renew+100*time.Millisecond)
	t.Logf("replica 2 left: replica 3 leads all six after %v", took)
	if took >= ttl {
		t.Errorf("after Leave the shards waited %v, a whole ttl (%v)", took, ttl)
	}
}

// One replica leads every shard; Release hands one over at once; a second
// replica then takes its share.
func TestShardsOneReplicaLeadsAll(t *testing.T) {
	forEachDriver(t, func(t *testing.T, st *Postgres) {
		ctx := context.Background()
		shards := []string{"a", "b", "c", "d", "e"}
		a := st.Shards("g", shards, time.Hour)
		for _, s := range shards {
			if ok, err := a.Lease(s).Lead(ctx); err != nil || !ok {
				t.Fatalf("sole replica: Lead(%q) = %v, %v; want true", s, ok, err)
			}
		}
		// A second replica joins: ⌈5/2⌉ = 3. It may take nothing yet: every
		// shard is led. The first, over its share, gives one up per
		// renewal until it leads 3.
		b := st.Shards("g", shards, time.Hour)
		for _, s := range shards {
			if ok, err := b.Lease(s).Lead(ctx); err != nil || ok {
				t.Fatalf("second replica: Lead(%q) = %v, %v; want false: the shard is led", s, ok, err)
			}
		}
		var kept []string
		for _, s := range shards {
			ok, err := a.Lease(s).Lead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				kept = append(kept, s)
			}
		}
		if len(kept) != 3 {
			t.Fatalf("after a second replica joined, the first kept %q, want 3 shards", kept)
		}
		var took []string
		for _, s := range shards {
			ok, err := b.Lease(s).Lead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				took = append(took, s)
			}
		}
		if len(took) != 2 || slices.ContainsFunc(took, func(s string) bool { return slices.Contains(kept, s) }) {
			t.Fatalf("the second replica took %q, want the 2 shards the first gave up (it kept %q)", took, kept)
		}
		// A released shard goes to a replica under its share ...
		if err := a.Lease(kept[0]).Release(ctx); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.Lease(kept[0]).Lead(ctx); err != nil || !ok {
			t.Fatalf("released shard: Lead by a replica leading 2 of 3 = %v, %v; want true", ok, err)
		}
		// ... and never to one at its share, even when it is free.
		if err := a.Lease(kept[1]).Release(ctx); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.Lease(kept[1]).Lead(ctx); err != nil || ok {
			t.Fatalf("a replica at its share (3 of 3) took a free shard: %v, %v", ok, err)
		}
		if ok, err := a.Lease(kept[1]).Lead(ctx); err != nil || !ok {
			t.Fatalf("Lead on a free shard by a replica leading 1 of 3 = %v, %v; want true", ok, err)
		}
	})
}

func TestShardsRefuseBadConfig(t *testing.T) {
	db := pgtest.Open(t)
	createHostTable(t, db.Pool, "text")
	st, err := NewPgx(db.Pool, testTable(false))
	st = migrated(t, st, err)
	ctx := context.Background()
	for name, s := range map[string]*ShardLease{
		"empty group":    st.Shards("", []string{"a"}, time.Second).Lease("a"),
		"group with /":   st.Shards("a/b", []string{"a"}, time.Second).Lease("a"),
		"no shards":      st.Shards("g", nil, time.Second).Lease(""),
		"repeated shard": st.Shards("g", []string{"a", "b", "a"}, time.Second).Lease("a"),
		"short ttl":      st.Shards("g", []string{"a"}, time.Microsecond).Lease("a"),
		"unknown shard":  st.Shards("g", []string{"a"}, time.Second).Lease("b"),
		"NUL in shard":   st.Shards("g", []string{"a\x00"}, time.Second).Lease("a\x00"),
	} {
		_, leadErr := s.Lead(ctx)
		relErr := s.Release(ctx)
		if !errors.Is(leadErr, ErrConfig) || !errors.Is(relErr, ErrConfig) {
			t.Errorf("%s: Lead %v, Release %v; want ErrConfig", name, leadErr, relErr)
		}
	}
	if err := st.Shards("", []string{"a"}, time.Second).Leave(ctx); !errors.Is(err, ErrConfig) {
		t.Errorf("Leave of a bad group: %v, want ErrConfig", err)
	}
	// The default shard, "", is a shard like any other.
	if ok, err := st.Shards("g", []string{""}, time.Second).Lease("").Lead(ctx); err != nil || !ok {
		t.Errorf(`Lead on shard "" = %v, %v; want true`, ok, err)
	}
}
