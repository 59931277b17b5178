package sweeper

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leakless/leakless/store"
)

// fakeLeader answers Lead from a script of the time since it was made.
type fakeLeader struct {
	start time.Time
	ttl   time.Duration
	lead  func(elapsed time.Duration) (bool, error)

	mu       sync.Mutex
	leads    int
	releases []error // ctx.Err() of each Release call
}

func (f *fakeLeader) Lead(ctx context.Context) (bool, error) {
	f.mu.Lock()
	f.leads++
	f.mu.Unlock()
	return f.lead(time.Since(f.start))
}

func (f *fakeLeader) Release(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases = append(f.releases, ctx.Err())
	return nil
}

func (f *fakeLeader) TTL() time.Duration { return f.ttl }

func (f *fakeLeader) released() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.releases...)
}

// run starts sw.Run and returns a function that cancels it and reports
// when Run returned.
func run(t *testing.T, sw *Sweeper) (stop func() time.Time) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan time.Time)
	go func() {
		if err := sw.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- time.Now()
	}()
	return func() time.Time {
		cancel()
		return <-done
	}
}

func TestRunSweepsAtStartThenEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &countingStore{Store: store.NewMemory(table)}
		sw := newSweeper(t, st, &recorder{}, WithInterval(time.Minute))
		start := time.Now()
		stop := run(t, sw)
		time.Sleep(10 * time.Minute)
		stop()

		calls := st.pendingCalls()
		if len(calls) < 9 || len(calls) > 12 {
			t.Fatalf("%d passes in 10 minutes at a 1m interval, want 9 to 12", len(calls))
		}
		if calls[0] != start {
			t.Errorf("first pass at +%v, want at once", calls[0].Sub(start))
		}
		for i := 1; i < len(calls); i++ {
			if gap := calls[i].Sub(calls[i-1]); gap < 54*time.Second || gap > 66*time.Second {
				t.Errorf("gap %d = %v, want 1m ± 10%%", i, gap)
			}
		}
	})
}

func TestRunReturnsAtOnceWhenCancelledDuringAStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 3, "")
		hang := &recorder{answer: func(ctx context.Context, _ string) error {
			<-ctx.Done()
			return ctx.Err()
		}}
		sw := newSweeper(t, mem, hang)
		stop := run(t, sw)
		time.Sleep(5 * time.Second)
		cancelled := time.Now()
		if returned := stop(); returned != cancelled {
			t.Errorf("Run returned %v after cancel, want at once", returned.Sub(cancelled))
		}
		if due, _ := mem.Pending(t.Context(), 10); len(due) != 3 || due[0].Attempts != 0 {
			t.Errorf("due after cancel = %+v, want 3 rows with no recorded attempt", due)
		}
	})
}

func TestRunReturnsWithinPassTimeoutWhenTheStoreHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 3, "")
		st := &countingStore{Store: mem, stallRecs: true}
		sw := newSweeper(t, st, &recorder{}, WithPassTimeout(20*time.Second))
		start := time.Now()
		stop := run(t, sw)
		time.Sleep(time.Second)
		cancelled := time.Now()
		returned := stop()
		// The bookkeeping runs on a context detached from Run's, bounded by
		// the pass's own deadline: 20s after the pass began.
		if returned.Sub(start) != 20*time.Second {
			t.Errorf("Run returned %v after cancel (%v after the pass began), want at the pass deadline",
				returned.Sub(cancelled), returned.Sub(start))
		}
	})
}

func TestRunStopsSweepingTheMomentLeadershipIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 1, "")
		var cancelledAt time.Time
		hang := &recorder{answer: func(ctx context.Context, _ string) error {
			<-ctx.Done()
			cancelledAt = time.Now()
			return ctx.Err()
		}}
		l := &fakeLeader{start: time.Now(), ttl: 3 * time.Second, lead: func(e time.Duration) (bool, error) {
			return e < 10*time.Second, nil
		}}
		st := &countingStore{Store: mem}
		sw := newSweeper(t, st, hang, WithLeader(l), WithPassTimeout(time.Hour))
		start := time.Now()
		stop := run(t, sw)
		time.Sleep(5 * time.Minute)
		stop()

		// Renewals every ttl/3 = 1s: the one at 10s says another replica
		// leads, and the pass in flight is cancelled then, not at its timeout.
		if got := cancelledAt.Sub(start); got != 10*time.Second {
			t.Errorf("in-flight stop cancelled at +%v, want +10s", got)
		}
		if n := len(st.pendingCalls()); n != 1 {
			t.Errorf("%d passes, want 1: a replica that does not lead must not sweep", n)
		}
		if r := l.released(); len(r) != 0 {
			t.Errorf("Release called %d times by a replica that had lost the lease", len(r))
		}
	})
}

func TestRunStopsSweepingWhenLeadershipCannotBeChecked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 1, "")
		var cancelledAt time.Time
		hang := &recorder{answer: func(ctx context.Context, _ string) error {
			<-ctx.Done()
			cancelledAt = time.Now()
			return ctx.Err()
		}}
		l := &fakeLeader{start: time.Now(), ttl: 30 * time.Second, lead: func(e time.Duration) (bool, error) {
			if e < 20*time.Second {
				return true, nil
			}
			return false, errors.New("database unreachable")
		}}
		sw := newSweeper(t, mem, hang, WithLeader(l), WithPassTimeout(time.Hour))
		start := time.Now()
		stop := run(t, sw)
		time.Sleep(time.Minute)
		stop()
		if got := cancelledAt.Sub(start); got != 20*time.Second {
			t.Errorf("in-flight stop cancelled at +%v, want +20s (the first failed renewal)", got)
		}
	})
}

func TestRunSweepsOnlyWhileLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &countingStore{Store: store.NewMemory(table)}
		// Another replica leads for the first 5 minutes.
		l := &fakeLeader{start: time.Now(), ttl: 30 * time.Second, lead: func(e time.Duration) (bool, error) {
			return e >= 5*time.Minute, nil
		}}
		sw := newSweeper(t, st, &recorder{}, WithLeader(l), WithInterval(time.Minute))
		start := time.Now()
		stop := run(t, sw)
		time.Sleep(10 * time.Minute)
		stop()

		calls := st.pendingCalls()
		if len(calls) == 0 {
			t.Fatalf("no pass after taking the lead")
		}
		if first := calls[0].Sub(start); first != 5*time.Minute {
			t.Errorf("first pass at +%v, want +5m (the first renewal that leads)", first)
		}
		if len(calls) < 4 || len(calls) > 6 {
			t.Errorf("%d passes in 5 minutes of leading, want 4 to 6", len(calls))
		}
		r := l.released()
		if len(r) != 1 || r[0] != nil {
			t.Errorf("Release calls = %v, want one, on a live context", r)
		}
	})
}
