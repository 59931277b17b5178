package sweeper

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

// overlap watches two sweepers' stop calls and records any moment when
// both are inside one.
type overlap struct {
	mu       sync.Mutex
	inside   [2]int
	lastSeen [2]time.Time // when each sweeper last started a stop
	both     int          // stops that began while the other sweeper was inside one
}

func (o *overlap) stopper(who int) *recorder {
	return &recorder{answer: func(ctx context.Context, _ string) error {
		o.mu.Lock()
		o.inside[who]++
		o.lastSeen[who] = time.Now()
		if o.inside[1-who] > 0 {
			o.both++
		}
		o.mu.Unlock()
		defer func() {
			o.mu.Lock()
			o.inside[who]--
			o.mu.Unlock()
		}()
		select {
		case <-time.After(10 * time.Millisecond):
			// Fail retryably so the rows come back after a short backoff
			// and every pass has stops to make.
			return errors.New("InternalError")
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
}

func (o *overlap) last(who int) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastSeen[who]
}

func (o *overlap) overlaps() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.both
}

func TestTwoSweepersOnOneLeaseNeverSweepTogether(t *testing.T) {
	h := newHostDB(t)
	for i := range 20 {
		h.put(t, "r"+strconv.Itoa(i), "removed", "i-"+strconv.Itoa(i))
	}
	const ttl = 1500 * time.Millisecond
	var watch overlap
	var (
		cancel [2]context.CancelFunc
		done   [2]chan struct{}
	)
	for who := range 2 {
		sw := newSweeper(t, h.st, watch.stopper(who),
			WithLeader(h.st.Lease("sweeper", ttl)),
			WithInterval(20*time.Millisecond), WithRowBackoff(time.Millisecond, time.Millisecond),
			WithPassTimeout(5*time.Second))
		var ctx context.Context
		ctx, cancel[who] = context.WithCancel(t.Context())
		done[who] = make(chan struct{})
		go func() {
			defer close(done[who])
			_ = sw.Run(ctx)
		}()
	}
	defer func() {
		for who := range 2 {
			cancel[who]()
			<-done[who]
		}
	}()

	waitFor(t, 5*time.Second, "a leader to sweep", func() bool {
		return !watch.last(0).IsZero() || !watch.last(1).IsZero()
	})
	time.Sleep(2 * ttl)
	leader := 0
	if watch.last(1).After(watch.last(0)) {
		leader = 1
	}
	if !watch.last(1 - leader).IsZero() {
		t.Errorf("both replicas swept before any handover")
	}

	killed := time.Now()
	cancel[leader]()
	<-done[leader]
	waitFor(t, 5*time.Second, "the other replica to take over", func() bool {
		return watch.last(1 - leader).After(killed)
	})
	if took := watch.last(1 - leader).Sub(killed); took > ttl {
		t.Errorf("handover took %v, want within the ttl %v", took, ttl)
	}
	time.Sleep(ttl)
	if n := watch.overlaps(); n != 0 {
		t.Errorf("%d stops began while the other replica was stopping, want 0", n)
	}
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
