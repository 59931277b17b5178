package bench

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	retrygo "github.com/avast/retry-go/v4"
)

// TestCancelMidSleep records what each library returns when the caller's
// context is cancelled while it sleeps before a retry: does the error still
// say why the call failed (errLast), and does it say it was cancelled? The
// expectations pin the behaviour of the versions in go.mod.
func TestCancelMidSleep(t *testing.T) {
	cases := append(libraries, library{"retry-go-v4 LastErrorOnly", func(ctx context.Context, op func() error, attempts int, delay time.Duration) error {
		return retrygo.Do(op, retrygo.Context(ctx), retrygo.Attempts(uint(attempts)),
			retrygo.Delay(delay), retrygo.DelayType(retrygo.FixedDelay), retrygo.LastErrorOnly(true))
	}})
	wantKept := map[string]bool{
		"leakless":                  true,
		"backoff-v5":                false, // returns context.Cause(ctx) alone
		"retry-go-v4":               true,  // returns every attempt's error plus the cause, as one list
		"retry-go-v4 LastErrorOnly": false, // returns context.Cause(ctx) alone
		"go-retry":                  false, // returns context.Cause(ctx) alone
	}
	for _, lib := range cases {
		t.Run(lib.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				calls := 0
				op := func() error {
					calls++
					return errLast
				}
				// The first call fails at once; the library then sleeps ten
				// minutes (inside backoff-v5's default 15-minute elapsed-time
				// limit), and the caller gives up one minute into that sleep.
				time.AfterFunc(time.Minute, cancel)
				start := time.Now()
				err := lib.run(ctx, op, 3, 10*time.Minute)

				kept, canceled := errors.Is(err, errLast), errors.Is(err, context.Canceled)
				t.Logf("%s: calls %d, returned after %v: last error kept: %s; says canceled: %s; err = %q", lib.name,
					calls, time.Since(start), yesNo(kept), yesNo(canceled), err)
				if calls != 1 || time.Since(start) != time.Minute {
					t.Errorf("%d calls, returned after %v; want 1 call, returning at the cancellation", calls, time.Since(start))
				}
				if !canceled {
					t.Errorf("err = %v, want it to report context.Canceled", err)
				}
				if kept != wantKept[lib.name] {
					t.Errorf("last error kept = %v, want %v", kept, wantKept[lib.name])
				}
			})
		})
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
