package teardown

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a Stopper whose answers are scripted per call. It records
// every call with the time it started, so synctest tests can assert the
// exact schedule.
type recorder struct {
	mu    sync.Mutex
	calls []callRecord
	// answer returns the result of the n-th call (1-based) for id.
	answer func(ctx context.Context, id string, n int) error
}

type callRecord struct {
	id string
	at time.Time
}

func (r *recorder) Stop(ctx context.Context, id string) error {
	r.mu.Lock()
	r.calls = append(r.calls, callRecord{id: id, at: time.Now()})
	n := 0
	for _, c := range r.calls {
		if c.id == id {
			n++
		}
	}
	r.mu.Unlock()
	if r.answer == nil {
		return nil
	}
	return r.answer(ctx, id, n)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// offsets returns when each call started, relative to start.
func (r *recorder) offsets(start time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, len(r.calls))
	for i, c := range r.calls {
		out[i] = c.at.Sub(start)
	}
	return out
}

// failing returns a recorder that fails every call with err.
func failing(err error) *recorder {
	return &recorder{answer: func(context.Context, string, int) error { return err }}
}

// withRand replaces the jitter source.
func withRand(f func() uint64) Option {
	return func(c *config) { c.rand = f }
}

// noWait is a backoff that never sleeps, for tests about counts, not time.
var noWait = WithBackoff(0, 0)
