package teardown

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// gauge measures how many calls are in flight at once.
type gauge struct {
	mu        sync.Mutex
	now, peak int
	hold      time.Duration // how long each call stays in flight
}

func (g *gauge) enter() {
	g.mu.Lock()
	g.now++
	g.peak = max(g.peak, g.now)
	g.mu.Unlock()
	time.Sleep(g.hold)
}

func (g *gauge) leave() {
	g.mu.Lock()
	g.now--
	g.mu.Unlock()
}

// batcher is a BatchStopper that records every batch it is sent.
type batcher struct {
	gauge
	mu      sync.Mutex
	batches [][]string
	sends   map[string]int
	stops   int
	// answer is the result for id the n-th time (1-based) it is sent;
	// omit leaves id out of the result map.
	answer func(id string, n int) (err error, omit bool)
}

func (b *batcher) Stop(context.Context, string) error {
	b.mu.Lock()
	b.stops++
	b.mu.Unlock()
	return errors.New("Stop called on a batcher")
}

func (b *batcher) StopBatch(ctx context.Context, ids []string) map[string]error {
	b.enter()
	defer b.leave()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches = append(b.batches, slices.Clone(ids))
	if b.sends == nil {
		b.sends = map[string]int{}
	}
	res := make(map[string]error, len(ids))
	for _, id := range ids {
		b.sends[id]++
		var err error
		omit := false
		if b.answer != nil {
			err, omit = b.answer(id, b.sends[id])
		}
		if !omit {
			res[id] = err
		}
	}
	return res
}

func (b *batcher) sizes() []int {
	var out []int
	for _, batch := range b.batches {
		out = append(out, len(batch))
	}
	return out
}

func instanceIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%04d", i)
	}
	return ids
}

func TestStopAllReturnsOneResultPerID(t *testing.T) {
	errAuth := errors.New("AuthFailure")
	s := &recorder{answer: func(_ context.Context, id string, n int) error {
		switch id {
		case "i-gone":
			return fmt.Errorf("not found: %w", ErrGone)
		case "i-denied":
			return Permanent(errAuth)
		case "i-flaky":
			if n == 1 {
				return errThrottled
			}
		case "i-broken":
			return errThrottled
		}
		return nil
	}}
	ids := []string{"i-ok", "i-gone", "i-denied", "i-flaky", "i-broken", "i-ok", "", "i-ok"}
	got := StopAll(context.Background(), s, ids, noWait)

	want := []string{"", "i-broken", "i-denied", "i-flaky", "i-gone", "i-ok"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Fatalf("result ids = %q, want %q", keys, want)
	}
	for _, id := range []string{"i-ok", "i-gone", "i-flaky"} {
		if got[id] != nil {
			t.Errorf("result[%s] = %v, want nil", id, got[id])
		}
	}
	if re := asRetryError(t, got["i-denied"]); re.Cause != ErrPermanent || re.Attempts != 1 || !errors.Is(re, errAuth) {
		t.Errorf("result[i-denied] = %+v, want permanent after 1 attempt", *re)
	}
	if re := asRetryError(t, got["i-broken"]); re.Cause != ErrExhausted || re.Attempts != 3 || re.Last != errThrottled {
		t.Errorf("result[i-broken] = %+v, want exhausted after 3 attempts", *re)
	}
	if !IsPermanent(got[""]) {
		t.Errorf("result[\"\"] = %v, want a permanent error", got[""])
	}

	calls := map[string]int{}
	for _, c := range s.calls {
		calls[c.id]++
	}
	wantCalls := map[string]int{"i-ok": 1, "i-gone": 1, "i-denied": 1, "i-flaky": 2, "i-broken": 3}
	if !maps.Equal(calls, wantCalls) {
		t.Errorf("calls per id = %v, want %v (duplicates stopped once, empty id never)", calls, wantCalls)
	}
}

// concurrentStopper holds every Stop call for a second and measures how many
// overlap.
type concurrentStopper struct{ gauge }

func (s *concurrentStopper) Stop(context.Context, string) error {
	s.enter()
	defer s.leave()
	return nil
}

func TestStopAllBoundsConcurrency(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []Option
		want int
	}{
		{"default", nil, DefaultConcurrency},
		{"three", []Option{WithConcurrency(3)}, 3},
		{"one", []Option{WithConcurrency(1)}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &concurrentStopper{gauge{hold: time.Second}}
				start := time.Now()
				got := StopAll(context.Background(), s, instanceIDs(20), tt.opts...)
				if len(got) != 20 {
					t.Errorf("got %d results, want 20", len(got))
				}
				if s.peak != tt.want {
					t.Errorf("peak concurrency = %d, want %d", s.peak, tt.want)
				}
				// ⌈20/n⌉ waves of one second each: the bound is also reached.
				if want := time.Duration((20+tt.want-1)/tt.want) * time.Second; time.Since(start) != want {
					t.Errorf("took %v, want %v", time.Since(start), want)
				}
			})
		})
	}
}

func TestStopAllSendsBatches(t *testing.T) {
	b := &batcher{}
	got := StopAll(context.Background(), b, instanceIDs(1200), WithBatchSize(500))
	if got := slices.Sorted(slices.Values(b.sizes())); !slices.Equal(got, []int{200, 500, 500}) {
		t.Errorf("batch sizes = %v, want 500, 500, 200", got)
	}
	if b.stops != 0 {
		t.Errorf("Stop called %d times, want 0", b.stops)
	}
	if len(got) != 1200 {
		t.Fatalf("got %d results, want 1200", len(got))
	}
	for id, err := range got {
		if err != nil {
			t.Fatalf("result[%s] = %v, want nil", id, err)
		}
	}
	var sent []string
	for _, batch := range b.batches {
		sent = append(sent, batch...)
	}
	if slices.Sort(sent); !slices.Equal(sent, instanceIDs(1200)) {
		t.Errorf("the batches did not carry every id exactly once")
	}
}

func TestStopAllDefaultBatchSizeIs500(t *testing.T) {
	b := &batcher{}
	StopAll(context.Background(), b, instanceIDs(1001))
	if got := slices.Sorted(slices.Values(b.sizes())); !slices.Equal(got, []int{1, 500, 500}) {
		t.Errorf("batch sizes = %v, want 500, 500, 1", got)
	}
}

func TestStopAllResendsOnlyRetryableFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ids := instanceIDs(1200)
		kind := func(id string) int {
			var n int
			fmt.Sscanf(id, "i-%d", &n)
			return n
		}
		// Round 1: every 10th id is throttled, the next one denied, the
		// next gone, and every 100th+3 is left out of the reply. Round 2:
		// every 20th id is throttled again. Round 3: all succeed.
		b := &batcher{answer: func(id string, n int) (error, bool) {
			k := kind(id)
			switch {
			case n == 1 && k%10 == 0:
				return errThrottled, false
			case k%10 == 1:
				return Permanent(errors.New("OperationNotPermitted")), false
			case n == 1 && k%10 == 2:
				return ErrGone, false
			case n == 1 && k%100 == 3:
				return nil, true
			case n == 2 && k%20 == 0:
				return errThrottled, false
			}
			return nil, false
		}}
		retried := map[int][]string{}
		start := time.Now()
		got := StopAll(context.Background(), b, ids, WithBatchSize(500), WithMaxAttempts(5),
			WithBackoff(time.Second, time.Minute), WithJitter(NoJitter),
			WithOnRetry(func(info RetryInfo) { retried[info.Attempt] = append(retried[info.Attempt], info.ID) }))

		var round2, round3 []string
		for _, id := range ids {
			k := kind(id)
			if k%10 == 0 || k%100 == 3 {
				round2 = append(round2, id)
			}
			if k%20 == 0 {
				round3 = append(round3, id)
			}
		}
		// 1200 ids in three batches, then 132 and 60 ids in one batch each.
		if got, want := b.sizes(), []int{len(round2), len(round3)}; len(got) != 5 || !slices.Equal(got[3:], want) {
			t.Fatalf("batch sizes = %v, want three first-round batches then %v", got, want)
		}
		if sent := slices.Sorted(slices.Values(b.batches[3])); !slices.Equal(sent, round2) {
			t.Errorf("round 2 re-sent %d ids, want exactly the %d that failed retryably", len(sent), len(round2))
		}
		if sent := slices.Sorted(slices.Values(b.batches[4])); !slices.Equal(sent, round3) {
			t.Errorf("round 3 re-sent %d ids, want exactly the %d that failed retryably again", len(sent), len(round3))
		}
		for id, n := range b.sends {
			if kind(id)%10 == 1 && n != 1 {
				t.Errorf("permanently failing %s was sent %d times, want 1", id, n)
			}
		}
		if slices.Sort(retried[1]); !slices.Equal(retried[1], round2) || !slices.Equal(slices.Sorted(slices.Values(retried[2])), round3) || len(retried) != 2 {
			t.Errorf("OnRetry fired for %d ids after round 1 and %d after round 2 (%d rounds), want %d and %d",
				len(retried[1]), len(retried[2]), len(retried), len(round2), len(round3))
		}
		if want := 3 * time.Second; time.Since(start) != want {
			t.Errorf("took %v, want %v (sleeps of 1s and 2s)", time.Since(start), want)
		}
		for _, id := range ids {
			err := got[id]
			if kind(id)%10 == 1 {
				if re := asRetryError(t, err); re.Cause != ErrPermanent || re.Attempts != 1 || re.ID != id {
					t.Errorf("result[%s] = %+v, want permanent after 1 attempt", id, *re)
				}
			} else if err != nil {
				t.Errorf("result[%s] = %v, want nil", id, err)
			}
		}
	})
}

func TestStopAllBatchGivesUpPerID(t *testing.T) {
	t.Run("exhausted", func(t *testing.T) {
		b := &batcher{answer: func(id string, _ int) (error, bool) {
			if id == "i-ok" {
				return nil, false
			}
			return errThrottled, false
		}}
		var mu sync.Mutex
		exhausted := map[string]int{}
		got := StopAll(context.Background(), b, []string{"i-ok", "i-a", "i-b"}, noWait,
			WithOnExhausted(func(_ context.Context, re *RetryError) {
				mu.Lock()
				defer mu.Unlock()
				exhausted[re.ID]++
				if re.Attempts != 3 || re.Cause != ErrExhausted || re.Last != errThrottled {
					t.Errorf("OnExhausted saw %+v, want 3 attempts, exhausted, last error kept", *re)
				}
			}))
		if got["i-ok"] != nil {
			t.Errorf("result[i-ok] = %v, want nil", got["i-ok"])
		}
		if want := map[string]int{"i-a": 1, "i-b": 1}; !maps.Equal(exhausted, want) {
			t.Errorf("OnExhausted calls = %v, want %v", exhausted, want)
		}
		if want := []int{3, 2, 2}; !slices.Equal(b.sizes(), want) {
			t.Errorf("batch sizes = %v, want %v", b.sizes(), want)
		}
		for _, id := range []string{"i-a", "i-b"} {
			if got[id] == nil {
				t.Errorf("result[%s] = nil, want a RetryError", id)
			}
		}
	})
	t.Run("cancelled mid-sleep", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(500*time.Millisecond, cancel)
			b := &batcher{answer: func(string, int) (error, bool) { return errThrottled, false }}
			start := time.Now()
			got := StopAll(ctx, b, []string{"i-a", "i-b"}, WithBackoff(time.Second, time.Second), WithJitter(NoJitter))
			if time.Since(start) != 500*time.Millisecond {
				t.Errorf("returned after %v, want 500ms", time.Since(start))
			}
			for id, err := range got {
				re := asRetryError(t, err)
				if !errors.Is(err, context.Canceled) || !errors.Is(err, errThrottled) || re.Attempts != 1 {
					t.Errorf("result[%s] = %+v, want cancelled after 1 attempt with the last error kept", id, *re)
				}
			}
		})
	})
	t.Run("attempt timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hung := true
			b := &batcher{}
			b.answer = func(string, int) (error, bool) { return nil, false }
			s := hangingBatcher{batcher: b, hangFirst: &hung}
			// A classifier that refuses everything does not stop a batch cut
			// off by the attempt timeout from being sent again.
			got := StopAll(context.Background(), s, []string{"i-a", "i-b"}, WithAttemptTimeout(time.Second), noWait,
				WithRetryable(func(error) bool { return false }))
			for id, err := range got {
				if err != nil {
					t.Errorf("result[%s] = %v, want nil after the hung batch is retried", id, err)
				}
			}
			if len(b.batches) != 1 {
				t.Errorf("batches answered = %d, want 1 after one hung call", len(b.batches))
			}
		})
	})
}

// hangingBatcher hangs its first StopBatch call until the call's context ends.
type hangingBatcher struct {
	*batcher
	hangFirst *bool
}

func (h hangingBatcher) StopBatch(ctx context.Context, ids []string) map[string]error {
	if *h.hangFirst {
		*h.hangFirst = false
		<-ctx.Done()
		return map[string]error{}
	}
	return h.batcher.StopBatch(ctx, ids)
}

func TestStopAllBoundsBatchConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &batcher{gauge: gauge{hold: time.Second}}
		StopAll(context.Background(), b, instanceIDs(50), WithBatchSize(10), WithConcurrency(2))
		if len(b.batches) != 5 || b.peak != 2 {
			t.Errorf("%d batches, peak %d in flight; want 5 and 2", len(b.batches), b.peak)
		}
	})
}

func TestStopAllContextAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, s := range map[string]interface {
		Stopper
		count() int
	}{
		"stopper": &recorder{},
		"batch":   batchCounter{&batcher{}},
	} {
		t.Run(name, func(t *testing.T) {
			got := StopAll(ctx, s, []string{"i-a", "i-b"})
			if s.count() != 0 {
				t.Errorf("calls = %d, want 0", s.count())
			}
			for id, err := range got {
				if re := asRetryError(t, err); !errors.Is(err, context.Canceled) || re.Attempts != 0 {
					t.Errorf("result[%s] = %+v, want cancelled after 0 attempts", id, *re)
				}
			}
		})
	}
}

type batchCounter struct{ *batcher }

func (b batchCounter) count() int { return len(b.batches) + b.stops }

func TestStopAllRejectsBadInput(t *testing.T) {
	s := &recorder{}
	got := StopAll(context.Background(), s, []string{"i-a", "i-b"}, WithConcurrency(0))
	for id, err := range got {
		if !errors.Is(err, ErrConfig) {
			t.Errorf("result[%s] = %v, want ErrConfig", id, err)
		}
	}
	if len(got) != 2 || s.count() != 0 {
		t.Errorf("%d results, %d calls; want 2 and 0", len(got), s.count())
	}
	for id, err := range StopAll(context.Background(), nil, []string{"i-a"}) {
		if err == nil {
			t.Errorf("result[%s] = nil with a nil stopper, want an error", id)
		}
	}
	if got := StopAll(context.Background(), s, nil); got == nil || len(got) != 0 {
		t.Errorf("StopAll of no ids = %v, want an empty map", got)
	}
}
