package sweeper

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// codedError is an API error with a code, as smithy's are.
type codedError struct{ code string }

func (e codedError) Error() string     { return "api error " + e.code }
func (e codedError) ErrorCode() string { return e.code }

// countingStore wraps a Store, counting Pending calls and optionally
// failing or stalling the writes.
type countingStore struct {
	store.Store
	mu        sync.Mutex
	pending   []time.Time // when each Pending call started
	reapedErr error
	stallRecs bool // Reaped and Failed block until their ctx ends
}

func (c *countingStore) Pending(ctx context.Context, limit int) ([]store.Pending, error) {
	c.mu.Lock()
	c.pending = append(c.pending, time.Now())
	c.mu.Unlock()
	return c.Store.Pending(ctx, limit)
}

func (c *countingStore) Reaped(ctx context.Context, p store.Pending) (bool, error) {
	if c.stallRecs {
		<-ctx.Done()
		return false, ctx.Err()
	}
	if c.reapedErr != nil {
		return false, c.reapedErr
	}
	return c.Store.Reaped(ctx, p)
}

func (c *countingStore) Failed(ctx context.Context, p store.Pending, err error, next time.Duration) error {
	if c.stallRecs {
		<-ctx.Done()
		return ctx.Err()
	}
	return c.Store.Failed(ctx, p, err, next)
}

func (c *countingStore) pendingCalls() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.pending)
}

func TestPassReapsEveryDueRowAcrossPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 1234, "")
		mem.Put(store.Row{ID: "live", Status: "running", InstanceID: "i-live"})
		st := &countingStore{Store: mem}
		stop := &recorder{}
		sink := events.NewMemory()
		sw := newSweeper(t, st, stop, WithBatchSize(500), WithEvents(sink))

		rep, err := sw.SweepOnce(t.Context())
		if err != nil {
			t.Fatalf("SweepOnce: %v", err)
		}
		if rep.Pending != 1234 || rep.Reaped != 1234 || rep.Failed != 0 {
			t.Errorf("report = %+v, want 1234 pending, 1234 reaped, 0 failed", rep)
		}
		if n := len(st.pendingCalls()); n != 3 {
			t.Errorf("Pending called %d times, want 3 (pages of 500, 500, 234)", n)
		}
		if n := stop.count(); n != 1234 {
			t.Errorf("stops = %d, want 1234", n)
		}
		if slices.Contains(stop.ids(), "i-live") {
			t.Errorf("the live row's instance was stopped")
		}
		if r, _ := mem.Get("r7"); r.InstanceID != "" {
			t.Errorf("r7 still holds %q after being reaped", r.InstanceID)
		}
		if n := len(ofType(sink, events.TypeReaped)); n != 1234 {
			t.Errorf("%d %s events, want 1234", n, events.TypeReaped)
		}
		if rep, _ := sw.SweepOnce(t.Context()); rep.Pending != 0 {
			t.Errorf("second pass found %d pending, want 0", rep.Pending)
		}
	})
}

func TestRetryableFailureBacksOffPerRow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 2, "")
		stop := &recorder{answer: func(_ context.Context, id string) error {
			if id == "i-0" {
				return codedError{"InternalError"}
			}
			return nil
		}}
		sink := events.NewMemory()
		sw := newSweeper(t, mem, stop, WithRowBackoff(time.Minute, 10*time.Minute),
			WithRetry(teardown.WithMaxAttempts(1)), WithEvents(sink))

		start := time.Now()
		for time.Since(start) < 30*time.Minute {
			if _, err := sw.SweepOnce(t.Context()); err != nil {
				t.Fatalf("SweepOnce: %v", err)
			}
			time.Sleep(10 * time.Second)
		}
		// Delays of 1, 2, 4, 8, then 10 (the cap) minutes.
		want := []time.Duration{0, time.Minute, 3 * time.Minute, 7 * time.Minute, 15 * time.Minute, 25 * time.Minute}
		if got := stop.callsFor("i-0", start); !slices.Equal(got, want) {
			t.Errorf("attempts of the failing row at %v, want %v", got, want)
		}
		if got := stop.callsFor("i-1", start); len(got) != 1 {
			t.Errorf("the healthy row was stopped %d times, want 1", len(got))
		}
		failed := ofType(sink, events.TypeReapFailed)
		if len(failed) != len(want) {
			t.Fatalf("%d %s events, want %d", len(failed), events.TypeReapFailed, len(want))
		}
		if p := failed[2].Payload; p["attempts"] != 3 || p["error_code"] != "InternalError" || p["permanent"] != false {
			t.Errorf("third failure payload = %v, want attempts 3, error_code InternalError, permanent false", p)
		}
	})
}

func TestPermanentFailureWaitsTheMaximum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 1, "")
		stop := &recorder{answer: func(context.Context, string) error {
			return teardown.Permanent(codedError{"OperationNotPermitted"})
		}}
		sink := events.NewMemory()
		sw := newSweeper(t, mem, stop, WithEvents(sink))

		start := time.Now()
		for time.Since(start) < 150*time.Minute {
			if _, err := sw.SweepOnce(t.Context()); err != nil {
				t.Fatalf("SweepOnce: %v", err)
			}
			time.Sleep(time.Minute)
		}
		want := []time.Duration{0, time.Hour, 2 * time.Hour}
		if got := stop.callsFor("i-0", start); !slices.Equal(got, want) {
			t.Errorf("attempts at %v, want one per hour %v", got, want)
		}
		failed := ofType(sink, events.TypeReapFailed)
		if len(failed) != 3 {
			t.Fatalf("%d %s events, want 3", len(failed), events.TypeReapFailed)
		}
		p := failed[0].Payload
		if failed[0].Subject != "r0" || p["error_code"] != "OperationNotPermitted" || p["permanent"] != true ||
			p["retry_in"] != time.Hour.String() {
			t.Errorf("event = %+v, want subject r0, error_code OperationNotPermitted, permanent, next attempt in 1h", failed[0])
		}
	})
}

func TestPassStopsWhenResultsCannotBeRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 10, "")
		st := &countingStore{Store: mem, reapedErr: errors.New("connection reset")}
		stop := &recorder{}
		sw := newSweeper(t, st, stop, WithBatchSize(5))

		rep, err := sw.SweepOnce(t.Context())
		if err == nil {
			t.Fatalf("SweepOnce returned no error though every Reaped failed")
		}
		if n := len(st.pendingCalls()); n != 1 {
			t.Errorf("Pending called %d times, want 1: a store that cannot record ends the pass", n)
		}
		if n := stop.count(); n != 5 || rep.Pending != 5 || rep.Reaped != 0 {
			t.Errorf("stops = %d, report = %+v; want 5 stops, 5 pending, 0 reaped", n, rep)
		}
	})
}

// unclearedStore answers Reaped with "the row changed" and clears nothing,
// so the rows stay due.
type unclearedStore struct{ countingStore }

func (u *unclearedStore) Reaped(context.Context, store.Pending) (bool, error) { return false, nil }

func TestPassNeverTakesARowTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 10, "")
		st := &unclearedStore{countingStore{Store: mem}}
		stop := &recorder{}
		sw := newSweeper(t, st, stop, WithBatchSize(5))

		rep, err := sw.SweepOnce(t.Context())
		if err != nil {
			t.Fatalf("SweepOnce: %v", err)
		}
		// Page two is page one again: the pass must end there rather than
		// stop the same instances until its timeout.
		if n := len(st.pendingCalls()); n != 2 {
			t.Errorf("Pending called %d times, want 2", n)
		}
		if n := stop.count(); n != 5 || rep.Pending != 5 {
			t.Errorf("stops = %d, report = %+v; want 5 stops, 5 pending", n, rep)
		}
	})
}

func TestPassStopsTakingWorkNearItsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 100, "")
		stop := &recorder{answer: func(ctx context.Context, _ string) error {
			select {
			case <-time.After(2 * time.Second):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		sw := newSweeper(t, mem, stop, WithBatchSize(1), WithConcurrency(1), WithPassTimeout(10*time.Second))

		rep, err := sw.SweepOnce(t.Context())
		if err != nil {
			t.Fatalf("SweepOnce: %v", err)
		}
		// Work ends at 7.5s, three quarters of the timeout: stops at 0, 2,
		// 4 and 6s; the fourth is cut off and left for the next pass.
		if rep.Pending != 4 || rep.Reaped != 3 || rep.Failed != 0 || rep.Duration != 7500*time.Millisecond {
			t.Errorf("report = %+v, want 4 pending, 3 reaped, 0 failed, 7.5s", rep)
		}
		due, _ := mem.Pending(t.Context(), 1000)
		if len(due) != 97 {
			t.Errorf("%d rows due after the pass, want 97 (the cut-off row gets no backoff)", len(due))
		}
	})
}

func TestCancelledPassStillRecordsWhatItDid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 5, "")
		stop := &recorder{answer: func(ctx context.Context, id string) error {
			if id == "i-4" {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}}
		sw := newSweeper(t, mem, stop)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)

		rep, err := sw.SweepOnce(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("SweepOnce error = %v, want context.Canceled", err)
		}
		if rep.Reaped != 4 || rep.Failed != 0 {
			t.Errorf("report = %+v, want 4 reaped, 0 failed", rep)
		}
		for _, id := range []string{"r0", "r1", "r2", "r3"} {
			if r, _ := mem.Get(id); r.InstanceID != "" {
				t.Errorf("%s still holds %s: its reap was not recorded after the cancel", id, r.InstanceID)
			}
		}
		due, _ := mem.Pending(t.Context(), 10)
		if len(due) != 1 || due[0].ResourceID != "r4" || due[0].Attempts != 0 {
			t.Errorf("due after the pass = %+v, want r4 with no recorded attempt", due)
		}
	})
}

func TestGoneCountsAsReaped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 1, "")
		stop := &recorder{answer: func(context.Context, string) error {
			return errors.Join(codedError{"InvalidInstanceID.NotFound"}, teardown.ErrGone)
		}}
		sw := newSweeper(t, mem, stop)
		rep, err := sw.SweepOnce(t.Context())
		if err != nil || rep.Reaped != 1 || rep.Failed != 0 {
			t.Fatalf("SweepOnce = %+v, %v; want 1 reaped", rep, err)
		}
		if r, _ := mem.Get("r0"); r.InstanceID != "" {
			t.Errorf("r0 still holds %s", r.InstanceID)
		}
	})
}

// A backlog no pass can finish, beside an inventory step that cannot
// finish in what is left of a pass: every other pass is the re-drive's
// alone, so the backlog drains at more than the bounded share, and the
// inventory step still runs every second pass.
func TestABacklogAndASlowInventoryTakeTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 1000, "")
		// Each stop of a batch takes a second: a pass of 10s (7.5s of
		// work) stops about 3 batches when bounded, 7 when not.
		slow := teardown.StopperFunc(func(ctx context.Context, id string) error {
			select {
			case <-time.After(time.Second):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		var listings int
		inv := inventoryFunc(func(ctx context.Context) ([]teardown.Instance, error) {
			listings++
			<-ctx.Done() // never finishes within a pass
			return nil, ctx.Err()
		})
		sw := newSweeper(t, mem, slow, WithRowGone(inv, RowGone{}), WithPassTimeout(10*time.Second),
			WithBatchSize(1), WithConcurrency(1), WithRetry(teardown.WithMaxAttempts(1)))
		var reaped []int
		var lists []int
		for range 4 {
			before := listings
			rep, _ := sw.SweepOnce(t.Context())
			reaped = append(reaped, rep.Reaped)
			lists = append(lists, listings-before)
		}
		if !slices.Equal(lists, []int{1, 0, 1, 0}) {
			t.Errorf("listings per pass %v, want [1 0 1 0]: the inventory step every second pass", lists)
		}
		if reaped[1] <= reaped[0] || reaped[3] <= reaped[2] {
			t.Errorf("reaped per pass %v, want more in the passes the re-drive has alone", reaped)
		}
	})
}
