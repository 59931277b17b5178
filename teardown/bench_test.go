package teardown

import (
	"context"
	"testing"
)

// The allocation budget: one for the call (the option set) on success, and
// at most four when three calls fail, however many attempts there are.
const (
	successAllocs = 1
	failureAllocs = 4
)

var (
	okStopper   = StopperFunc(func(context.Context, string) error { return nil })
	failStopper = StopperFunc(func(context.Context, string) error { return errThrottled })
)

func BenchmarkStopWithRetry(b *testing.B) {
	ctx := context.Background()
	b.Run("success", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := StopWithRetry(ctx, okStopper, "i-1", WithMaxAttempts(3), WithBackoff(0, 0)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("3-failures-zero-delay", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := StopWithRetry(ctx, failStopper, "i-1", WithMaxAttempts(3), WithBackoff(0, 0)); err == nil {
				b.Fatal("want an error")
			}
		}
	})
}

func TestStopWithRetryAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	ctx := context.Background()
	success := testing.AllocsPerRun(100, func() {
		StopWithRetry(ctx, okStopper, "i-1", WithMaxAttempts(3), WithBackoff(0, 0))
	})
	if success > successAllocs {
		t.Errorf("success: %v allocations per call, want at most %d", success, successAllocs)
	}
	failure := testing.AllocsPerRun(100, func() {
		StopWithRetry(ctx, failStopper, "i-1", WithMaxAttempts(3), WithBackoff(0, 0))
	})
	if failure > failureAllocs {
		t.Errorf("3 failures, zero delay: %v allocations per call, want at most %d", failure, failureAllocs)
	}
	// One timer serves every sleep: ten attempts cost what three do.
	three := testing.AllocsPerRun(20, func() {
		StopWithRetry(ctx, failStopper, "i-1", WithMaxAttempts(3), WithBackoff(1, 1), WithJitter(NoJitter))
	})
	ten := testing.AllocsPerRun(20, func() {
		StopWithRetry(ctx, failStopper, "i-1", WithMaxAttempts(10), WithBackoff(1, 1), WithJitter(NoJitter))
	})
	if ten != three {
		t.Errorf("with sleeps: %v allocations for 10 attempts, %v for 3; want equal", ten, three)
	}
}
