package teardown_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leakless/leakless/teardown"
)

// batchRecorder is a BatchStopper that records each StopBatch call and
// fails the ids its fail function names.
type batchRecorder struct {
	mu    sync.Mutex
	calls [][]string
	at    []time.Time
	fail  func(id string) error
	hold  chan struct{} // if set, each call waits for it (or its ctx)
	ctxs  []context.Context
}

func (b *batchRecorder) Stop(ctx context.Context, id string) error {
	return b.StopBatch(ctx, []string{id})[id]
}

func (b *batchRecorder) StopBatch(ctx context.Context, ids []string) map[string]error {
	b.mu.Lock()
	b.calls = append(b.calls, slices.Clone(ids))
	b.at = append(b.at, time.Now())
	b.ctxs = append(b.ctxs, ctx)
	hold, fail := b.hold, b.fail
	b.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			res := make(map[string]error, len(ids))
			for _, id := range ids {
				res[id] = ctx.Err()
			}
			return res
		}
	}
	res := make(map[string]error, len(ids))
	for _, id := range ids {
		res[id] = nil
		if fail != nil {
			res[id] = fail(id)
		}
	}
	return res
}

// seen returns the calls so far: their ids, when each began, and its ctx.
func (b *batchRecorder) seen() ([][]string, []time.Time, []context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls), slices.Clone(b.at), slices.Clone(b.ctxs)
}

func (b *batchRecorder) sizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int
	for _, c := range b.calls {
		out = append(out, len(c))
	}
	slices.Sort(out)
	return out
}

func coalescer(t *testing.T, bs teardown.BatchStopper, opts ...teardown.CoalesceOption) *teardown.Coalescer {
	t.Helper()
	c, err := teardown.Coalesce(bs, opts...)
	if err != nil {
		t.Fatalf("Coalesce: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// stopEach calls Stop for each id from its own goroutine and returns the
// results by id.
func stopEach(ctx context.Context, c *teardown.Coalescer, ids []string) map[string]error {
	var mu sync.Mutex
	out := make(map[string]error, len(ids))
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			err := c.Stop(ctx, id)
			mu.Lock()
			out[id] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func ids(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestCoalesceGathersConcurrentStopsIntoOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &batchRecorder{fail: func(id string) error {
			if strings.HasSuffix(id, "7") {
				return teardown.Permanent(errors.New("OperationNotPermitted: " + id))
			}
			return nil
		}}
		c := coalescer(t, bs)
		start := time.Now()
		res := stopEach(t.Context(), c, ids(100, "i-"))
		if got := bs.sizes(); !slices.Equal(got, []int{100}) {
			t.Fatalf("StopBatch calls of sizes %v, want one of 100", got)
		}
		_, at, _ := bs.seen()
		if d := at[0].Sub(start); d != teardown.DefaultCoalesceIdle {
			t.Errorf("batch sent after %v, want after the %v idle window", d, teardown.DefaultCoalesceIdle)
		}
		for id, err := range res {
			if want := strings.HasSuffix(id, "7"); (err != nil) != want || want && !strings.Contains(err.Error(), id) {
				t.Errorf("Stop(%s) = %v, want its own result (failure: %v)", id, err, want)
			}
		}
	})
}

func TestCoalesceSendsAtTheMaxWaitWhileStopsKeepArriving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &batchRecorder{}
		c := coalescer(t, bs, teardown.WithCoalesceWindow(100*time.Millisecond, time.Second))
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 30 { // one every 50ms for 1.5s: never idle for 100ms
			wg.Go(func() { _ = c.Stop(t.Context(), fmt.Sprint("i-", i)) })
			time.Sleep(50 * time.Millisecond)
		}
		wg.Wait()
		if _, at, _ := bs.seen(); len(at) < 2 || at[0].Sub(start) != time.Second {
			t.Fatalf("batches sent at %v, want the first at the 1s max wait", at)
		}
		if got := bs.sizes(); len(got) != 2 || got[0]+got[1] != 30 {
			t.Errorf("batch sizes %v, want 30 ids in 2 batches", got)
		}
	})
}

func TestCoalesceSendsAFullBatchAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &batchRecorder{}
		c := coalescer(t, bs)
		res := c.StopBatch(t.Context(), ids(1200, "i-"))
		if got := bs.sizes(); !slices.Equal(got, []int{200, 500, 500}) {
			t.Errorf("batch sizes %v, want 500, 500 and 200", got)
		}
		if len(res) != 1200 {
			t.Errorf("%d results, want 1200", len(res))
		}
	})
}

func TestCoalesceDropsTheIDOfACallerCancelledMidWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &batchRecorder{}
		c := coalescer(t, bs)
		ctx, cancel := context.WithCancelCause(t.Context())
		cause := errors.New("client went away")
		done := make(chan error, 1)
		go func() { done <- c.Stop(ctx, "i-gone") }()
		go func() { _ = c.Stop(t.Context(), "i-kept") }()
		time.Sleep(10 * time.Millisecond)
		cancel(cause)
		if err := <-done; !errors.Is(err, cause) {
			t.Errorf("cancelled Stop = %v, want its context's cause", err)
		}
		synctest.Wait()
		time.Sleep(time.Second)
		if calls, _, _ := bs.seen(); len(calls) != 1 || !slices.Equal(calls[0], []string{"i-kept"}) {
			t.Errorf("calls %v, want one naming only i-kept", calls)
		}
	})
}

func TestCoalesceEndsACallNoCallerWaitsFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &batchRecorder{hold: make(chan struct{})}
		c := coalescer(t, bs)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel) // the batch went out at 100ms
		if err := c.Stop(ctx, "i-1"); !errors.Is(err, context.Canceled) {
			t.Errorf("Stop = %v, want the caller's cancellation", err)
		}
		synctest.Wait()
		if _, _, ctxs := bs.seen(); ctxs[0].Err() == nil {
			t.Errorf("the StopBatch call still runs with no caller waiting")
		}
	})
}

func TestCoalesceSendsADuplicateIDOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &batchRecorder{}
		c := coalescer(t, bs)
		res := stopEach(t.Context(), c, []string{"i-1", "i-1", "i-2"})
		if calls, _, _ := bs.seen(); len(calls) != 1 || len(calls[0]) != 2 {
			t.Errorf("calls %v, want one naming i-1 and i-2 once each", calls)
		}
		if len(res) != 2 || res["i-1"] != nil {
			t.Errorf("results %v, want both nil", res)
		}
	})
}

func TestCoalesceCloseSendsWhatWaitsAndRefusesMore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &batchRecorder{}
		c, err := teardown.Coalesce(bs, teardown.WithCoalesceWindow(time.Hour, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Stop(t.Context(), "i-1") }()
		synctest.Wait()
		start := time.Now()
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-done; err != nil || time.Since(start) != 0 {
			t.Errorf("Stop pending at Close = %v after %v, want nil at once", err, time.Since(start))
		}
		if err := c.Stop(t.Context(), "i-2"); !errors.Is(err, teardown.ErrClosed) {
			t.Errorf("Stop after Close = %v, want ErrClosed", err)
		}
	})
}

func TestCoalesceUnderStopAllFromManyHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := &batchRecorder{}
		c := coalescer(t, bs)
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				res := teardown.StopAll(t.Context(), c, []string{fmt.Sprint("i-", i)})
				if err := res[fmt.Sprint("i-", i)]; err != nil {
					t.Errorf("StopAll: %v", err)
				}
			})
		}
		wg.Wait()
		if got := bs.sizes(); !slices.Equal(got, []int{50}) {
			t.Errorf("batch sizes %v, want the 50 handlers' stops in one call", got)
		}
	})
}

func TestCoalesceRejectsBadOptions(t *testing.T) {
	for name, opt := range map[string]teardown.CoalesceOption{
		"zero idle":     teardown.WithCoalesceWindow(0, time.Second),
		"idle past max": teardown.WithCoalesceWindow(2*time.Second, time.Second),
		"zero max ids":  teardown.WithCoalesceMaxIDs(0),
		"negative max":  teardown.WithCoalesceWindow(time.Millisecond, -time.Second),
	} {
		if _, err := teardown.Coalesce(&batchRecorder{}, opt); !errors.Is(err, teardown.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
	if _, err := teardown.Coalesce(nil); !errors.Is(err, teardown.ErrConfig) {
		t.Errorf("nil stopper: err = %v, want ErrConfig", err)
	}
}

func ExampleCoalesce() {
	// A stopper that terminates whatever it is given, in batches.
	var calls int
	var mu sync.Mutex
	bs := batchFunc(func(_ context.Context, ids []string) map[string]error {
		mu.Lock()
		calls++
		mu.Unlock()
		res := make(map[string]error, len(ids))
		for _, id := range ids {
			res[id] = nil // terminated
		}
		return res
	})
	c, err := teardown.Coalesce(bs)
	if err != nil {
		panic(err)
	}
	defer c.Close()

	// Ten DELETE handlers, each stopping its own instance at once.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { _ = teardown.StopWithRetry(context.Background(), c, fmt.Sprint("i-", i)) })
	}
	wg.Wait()
	fmt.Println("TerminateInstances calls:", calls)
	// Output: TerminateInstances calls: 1
}

// batchFunc adapts a function to teardown.BatchStopper.
type batchFunc func(ctx context.Context, ids []string) map[string]error

func (f batchFunc) Stop(ctx context.Context, id string) error { return f(ctx, []string{id})[id] }
func (f batchFunc) StopBatch(ctx context.Context, ids []string) map[string]error {
	return f(ctx, ids)
}
