package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	retrygo "github.com/avast/retry-go/v4"
	"github.com/cenkalti/backoff/v5"
	"github.com/leakless/leakless/teardown"
	"github.com/sethvargo/go-retry"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// errLast is what the operation returns: the error a caller needs to see.
var errLast = errors.New("RequestLimitExceeded")

// library runs op under one retry library, configured for at most attempts
// calls separated by delay, and returns what the library returns. Each run
// builds the library's configuration afresh, as a caller stopping one
// instance would: most of these libraries' backoff values are stateful.
type library struct {
	name string
	run  func(ctx context.Context, op func() error, attempts int, delay time.Duration) error
}

var libraries = []library{
	{"leakless", func(ctx context.Context, op func() error, attempts int, delay time.Duration) error {
		return teardown.StopWithRetry(ctx, opStopper(op), "i-1",
			teardown.WithMaxAttempts(attempts), teardown.WithBackoff(delay, delay), teardown.WithJitter(teardown.NoJitter))
	}},
	{"backoff-v5", func(ctx context.Context, op func() error, attempts int, delay time.Duration) error {
		_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, op() },
			backoff.WithBackOff(backoff.NewConstantBackOff(delay)), backoff.WithMaxTries(uint(attempts)))
		return err
	}},
	{"retry-go-v4", func(ctx context.Context, op func() error, attempts int, delay time.Duration) error {
		return retrygo.Do(op, retrygo.Context(ctx), retrygo.Attempts(uint(attempts)),
			retrygo.Delay(delay), retrygo.DelayType(retrygo.FixedDelay))
	}},
	{"go-retry", func(ctx context.Context, op func() error, attempts int, delay time.Duration) error {
		b := retry.WithMaxRetries(uint64(attempts-1), retry.BackoffFunc(func() (time.Duration, bool) { return delay, false }))
		return retry.Do(ctx, b, func(context.Context) error { return retry.RetryableError(op()) })
	}},
}

// opStopper adapts op to teardown.Stopper without a closure, as a real
// Stopper (a pointer to an API client) needs none.
type opStopper func() error

func (op opStopper) Stop(context.Context, string) error { return op() }

func succeed() error { return nil }
func fail() error    { return errLast }

func BenchmarkRetry(b *testing.B) {
	ctx := context.Background()
	for _, sc := range []struct {
		name string
		op   func() error
		fail bool
	}{
		{"success", succeed, false},
		{"3-failures-zero-delay", fail, true},
	} {
		for _, lib := range libraries {
			b.Run("scenario="+sc.name+"/lib="+lib.name, func(b *testing.B) {
				// What each library returns is checked by the tests; the
				// loop checks only that the scenario ran, so that inspecting
				// the error is not counted against the library.
				b.ReportAllocs()
				for b.Loop() {
					if err := lib.run(ctx, sc.op, 3, 0); (err != nil) != sc.fail {
						b.Fatalf("err = %v", err)
					}
				}
			})
		}
	}
}

func TestEveryLibraryMakesThreeCalls(t *testing.T) {
	for _, lib := range libraries {
		calls := 0
		err := lib.run(context.Background(), func() error { calls++; return errLast }, 3, 0)
		if calls != 3 || !errors.Is(err, errLast) {
			t.Errorf("%s: %d calls, err %v; want 3 calls ending in %v", lib.name, calls, err, errLast)
		}
	}
}
