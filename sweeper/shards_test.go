package sweeper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/internal/readme"
	"github.com/leakless/leakless/store"
)

func TestRunAllRefusesBadInput(t *testing.T) {
	sw := newSweeper(t, store.NewMemory(table), &recorder{})
	for name, sweepers := range map[string][]*Sweeper{
		"none":  nil,
		"nil":   {sw, nil},
		"twice": {sw, sw},
	} {
		if err := RunAll(t.Context(), sweepers...); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: RunAll = %v, want ErrConfig", name, err)
		}
	}
}

// RunAll sweeps with every sweeper and returns, with every goroutine gone
// (TestMain's goleak checks), once ctx ends.
func TestRunAllRunsEverySweeperUntilCancelled(t *testing.T) {
	mem := store.NewMemory(table)
	locations := []string{"", "eu-west-1", "us-east-1"}
	stoppers := map[string]*recorder{}
	var sweepers []*Sweeper
	for _, loc := range locations {
		for i := range 3 {
			mem.Put(store.Row{ID: loc + "/r" + fmt.Sprint(i), Status: "removed", InstanceID: loc + "/i-" + fmt.Sprint(i), Location: loc})
		}
		stoppers[loc] = &recorder{}
		sweepers = append(sweepers, newSweeper(t, mem.In(loc), stoppers[loc], WithInterval(time.Hour)))
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- RunAll(ctx, sweepers...) }()
	waitFor(t, 5*time.Second, "every location to be swept", func() bool {
		for _, loc := range locations {
			if stoppers[loc].count() < 3 {
				return false
			}
		}
		return true
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunAll: %v", err)
	}
	for _, loc := range locations {
		for _, id := range stoppers[loc].ids() {
			if !strings.HasPrefix(id, loc+"/") {
				t.Errorf("location %q's stopper was sent %s", loc, id)
			}
		}
	}
}

// Two replicas, each running a sweeper per location with RunAll and the
// location's shard lease, over one PostgreSQL table whose rows say their
// location: every row is reaped by its own location's stopper, the three
// shards are led two and one, and once one replica stops and leaves, the
// other leads all three and reaps what follows.
func TestShardedReplicasReapEveryLocation(t *testing.T) {
	db := pgtest.Open(t)
	if _, err := db.Pool.Exec(t.Context(), `CREATE TABLE workspaces (
		id text PRIMARY KEY, parent_id text, status text NOT NULL, instance_id text, region text)`); err != nil {
		t.Fatal(err)
	}
	tbl := table
	tbl.Location = "region"
	st, err := store.NewPgx(db.Pool, tbl)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	locations := []string{"ap-south-1", "eu-west-1", "us-east-1"}
	put := func(prefix string, n int) {
		for _, loc := range locations {
			for i := range n {
				id := fmt.Sprintf("%s/%s/r%d", loc, prefix, i)
				if _, err := db.Pool.Exec(t.Context(), `INSERT INTO workspaces (id, status, instance_id, region) VALUES ($1, 'removed', $2, $3)`,
					id, strings.Replace(id, "/r", "/i-", 1), loc); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	held := func() int {
		var n int
		if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM workspaces WHERE instance_id IS NOT NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	put("a", 20)

	const ttl = 600 * time.Millisecond
	type replica struct {
		shards   *store.Shards
		stoppers map[string]*recorder
		leading  map[string]*countingLeader
		cancel   context.CancelFunc
		done     chan error
	}
	var mu sync.Mutex
	start := func() *replica {
		r := &replica{shards: st.Shards("sweeper", locations, ttl), stoppers: map[string]*recorder{}, leading: map[string]*countingLeader{}, done: make(chan error, 1)}
		var sweepers []*Sweeper
		for _, loc := range locations {
			scoped, err := st.In(loc)
			if err != nil {
				t.Fatal(err)
			}
			r.stoppers[loc] = &recorder{}
			r.leading[loc] = &countingLeader{ShardLease: r.shards.Lease(loc), mu: &mu}
			sweepers = append(sweepers, newSweeper(t, scoped, r.stoppers[loc],
				WithLeader(r.leading[loc]), WithInterval(20*time.Millisecond), WithPassTimeout(5*time.Second)))
		}
		ctx, cancel := context.WithCancel(t.Context())
		r.cancel = cancel
		go func() { r.done <- RunAll(ctx, sweepers...) }()
		return r
	}
	stop := func(r *replica) {
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("RunAll: %v", err)
		}
		if err := r.shards.Leave(context.Background()); err != nil {
			t.Errorf("Leave: %v", err)
		}
	}
	a, b := start(), start()
	all := []*replica{a, b}
	defer func() {
		for _, r := range []*replica{a, b} {
			if r != nil {
				stop(r)
			}
		}
	}()
	leads := func(r *replica) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, l := range r.leading {
			if l.leading {
				n++
			}
		}
		return n
	}
	waitFor(t, 10*time.Second, "every row reaped and the shards spread 2+1", func() bool {
		return held() == 0 && leads(a)+leads(b) == 3 && max(leads(a), leads(b)) == 2
	})

	stop(a)
	a = nil
	put("b", 10)
	waitFor(t, 10*time.Second, "the remaining replica to lead all three and reap the new rows", func() bool {
		return held() == 0 && leads(b) == 3
	})

	for _, r := range all {
		for loc, rec := range r.stoppers {
			for _, id := range rec.ids() {
				if !strings.HasPrefix(id, loc+"/") {
					t.Errorf("location %q's stopper was sent %s", loc, id)
				}
			}
		}
	}
}

// countingLeader is a shard lease that remembers its last answer.
type countingLeader struct {
	*store.ShardLease
	mu      *sync.Mutex
	leading bool
}

func (l *countingLeader) Lead(ctx context.Context) (bool, error) {
	ok, err := l.ShardLease.Lead(ctx)
	l.mu.Lock()
	l.leading = ok && err == nil
	l.mu.Unlock()
	return ok, err
}

func (l *countingLeader) Release(ctx context.Context) error {
	l.mu.Lock()
	l.leading = false
	l.mu.Unlock()
	return l.ShardLease.Release(ctx)
}

// The README's wiring for locations is sweepRegions, which compiles.
func TestREADMELocationsWiring(t *testing.T) {
	blocks, err := readme.GoBlocks("../README.md", "Locations, shards and coalesced stops")
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile("shards_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 1 || !strings.Contains(string(code), blocks[0]) {
		t.Errorf("the README's wiring for locations, %q, is not sweepRegions in shards_example_test.go", blocks)
	}
}
