package teardown

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var errThrottled = errors.New("RequestLimitExceeded")

// asRetryError fails the test unless err is a *RetryError.
func asRetryError(t *testing.T, err error) *RetryError {
	t.Helper()
	var re *RetryError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v (%T), want a *RetryError", err, err)
	}
	return re
}

func TestStopWithRetryMakesExactlyMaxAttemptsCalls(t *testing.T) {
	for _, attempts := range []int{1, 2, 3, 7} {
		t.Run(fmt.Sprint(attempts), func(t *testing.T) {
			var log []string
			s := &recorder{answer: func(_ context.Context, _ string, n int) error {
				log = append(log, fmt.Sprintf("call %d", n))
				return errThrottled
			}}
			err := StopWithRetry(context.Background(), s, "i-1",
				WithMaxAttempts(attempts), noWait,
				WithOnRetry(func(info RetryInfo) {
					log = append(log, fmt.Sprintf("retry after %d", info.Attempt))
				}),
				WithOnExhausted(func(context.Context, *RetryError) {
					log = append(log, "exhausted")
				}),
			)

			var want []string
			for n := 1; n <= attempts; n++ {
				want = append(want, fmt.Sprintf("call %d", n))
				if n < attempts {
					want = append(want, fmt.Sprintf("retry after %d", n))
				}
			}
			want = append(want, "exhausted")
			if !slices.Equal(log, want) {
				t.Errorf("sequence = %q, want %q", log, want)
			}
			re := asRetryError(t, err)
			if re.Attempts != attempts || re.Cause != ErrExhausted || re.Last != errThrottled || re.ID != "i-1" {
				t.Errorf("RetryError = %+v, want ID i-1, Attempts %d, Cause ErrExhausted, Last errThrottled", *re, attempts)
			}
		})
	}
}

func TestStopWithRetryDefaultsToThreeAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := failing(errThrottled)
		err := StopWithRetry(context.Background(), s, "i-1")
		if got := s.count(); got != 3 {
			t.Errorf("calls = %d, want 3", got)
		}
		if re := asRetryError(t, err); re.Attempts != 3 {
			t.Errorf("Attempts = %d, want 3", re.Attempts)
		}
	})
}

func TestStopWithRetryNoJitterSleepsExactBackoff(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
		attempts  int
		want      []time.Duration // when each call starts
	}{
		{"doubles", time.Second, 20 * time.Second, 3, []time.Duration{0, 1 * time.Second, 3 * time.Second}},
		{"capped", time.Second, 3 * time.Second, 6, []time.Duration{0, 1 * time.Second, 3 * time.Second, 6 * time.Second, 9 * time.Second, 12 * time.Second}},
		{"defaults", DefaultBackoffBase, DefaultBackoffMax, 7, []time.Duration{0, 1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second, 51 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				s := failing(errThrottled)
				var delays []time.Duration
				StopWithRetry(context.Background(), s, "i-1",
					WithMaxAttempts(tt.attempts), WithBackoff(tt.base, tt.max), WithJitter(NoJitter),
					WithOnRetry(func(info RetryInfo) { delays = append(delays, info.Delay) }))
				if got := s.offsets(start); !slices.Equal(got, tt.want) {
					t.Errorf("calls at %v, want %v", got, tt.want)
				}
				for i, d := range delays {
					if slept := tt.want[i+1] - tt.want[i]; d != slept {
						t.Errorf("RetryInfo.Delay #%d = %v, want the %v actually slept", i+1, d, slept)
					}
				}
			})
		})
	}
}

func TestStopWithRetryFullJitterStaysWithinCap(t *testing.T) {
	const base, max = time.Second, 20 * time.Second
	sources := map[string]func() uint64{
		"zero":    func() uint64 { return 0 },
		"highest": func() uint64 { return math.MaxUint64 },
		"random":  nil, // the default source
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				s := failing(errThrottled)
				var delays []time.Duration
				opts := []Option{WithMaxAttempts(10), WithBackoff(base, max),
					WithOnRetry(func(info RetryInfo) { delays = append(delays, info.Delay) })}
				if src != nil {
					opts = append(opts, withRand(src))
				}
				StopWithRetry(context.Background(), s, "i-1", opts...)

				at := s.offsets(start)
				if len(delays) != 9 || len(at) != 10 {
					t.Fatalf("got %d delays and %d calls, want 9 and 10", len(delays), len(at))
				}
				for i, d := range delays {
					n := i + 1
					limit := min(max, base<<(n-1))
					if d < 0 || d > limit {
						t.Errorf("delay after attempt %d = %v, want within [0, %v]", n, d, limit)
					}
					switch name {
					case "zero":
						if d != 0 {
							t.Errorf("delay after attempt %d = %v with a zero source, want 0", n, d)
						}
					case "highest":
						if d != limit {
							t.Errorf("delay after attempt %d = %v with the highest source, want %v", n, d, limit)
						}
					}
					if slept := at[n] - at[n-1]; slept != d {
						t.Errorf("slept %v after attempt %d, but reported %v", slept, n, d)
					}
				}
			})
		})
	}
}

func TestStopWithRetryHugeAttemptCountNeverOverflows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const max = 20 * time.Second
		var delays []time.Duration
		StopWithRetry(context.Background(), failing(errThrottled), "i-1",
			WithMaxAttempts(200), WithBackoff(time.Second, max), WithJitter(NoJitter),
			WithOnRetry(func(info RetryInfo) { delays = append(delays, info.Delay) }))
		if len(delays) != 199 {
			t.Fatalf("got %d delays, want 199", len(delays))
		}
		for i, d := range delays[5:] {
			if d != max {
				t.Fatalf("delay after attempt %d = %v, want the cap %v", i+6, d, max)
			}
		}
	})
}

func TestStopWithRetryContextAlreadyDone(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()

	for _, tt := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"canceled", canceled, context.Canceled},
		{"deadline", expired, context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := failing(errThrottled)
			exhausted := 0
			err := StopWithRetry(tt.ctx, s, "i-1", WithOnExhausted(func(context.Context, *RetryError) { exhausted++ }))
			if s.count() != 0 {
				t.Errorf("calls = %d, want 0", s.count())
			}
			re := asRetryError(t, err)
			if re.Attempts != 0 || !errors.Is(err, tt.want) || re.Last != nil {
				t.Errorf("RetryError = %+v, want Attempts 0, Cause %v, no Last", *re, tt.want)
			}
			if exhausted != 1 {
				t.Errorf("OnExhausted called %d times, want 1", exhausted)
			}
		})
	}
}

func TestStopWithRetryCancelDuringSleepKeepsLastError(t *testing.T) {
	errShutdown := errors.New("shutting down")
	for _, tt := range []struct {
		name   string
		cancel func(context.CancelCauseFunc)
		want   []error
	}{
		{"plain", func(c context.CancelCauseFunc) { c(nil) }, []error{context.Canceled}},
		{"with cause", func(c context.CancelCauseFunc) { c(errShutdown) }, []error{context.Canceled, errShutdown}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(context.Background())
				defer cancel(nil)
				go func() {
					time.Sleep(3 * time.Second)
					tt.cancel(cancel)
				}()
				start := time.Now()
				err := StopWithRetry(ctx, failing(errThrottled), "i-1",
					WithBackoff(10*time.Second, 10*time.Second), WithJitter(NoJitter))
				if elapsed := time.Since(start); elapsed != 3*time.Second {
					t.Errorf("returned after %v, want 3s (the moment of cancellation)", elapsed)
				}
				for _, want := range append(tt.want, errThrottled) {
					if !errors.Is(err, want) {
						t.Errorf("errors.Is(%v, %v) = false, want true", err, want)
					}
				}
				if re := asRetryError(t, err); re.Attempts != 1 {
					t.Errorf("Attempts = %d, want 1", re.Attempts)
				}
			})
		})
	}
}

func TestStopWithRetryNeverSleepsPastTheDeadline(t *testing.T) {
	// Calls at 0s and 1s; the next sleep (2s) would end at 3s.
	for _, deadline := range []time.Duration{2500 * time.Millisecond, 3 * time.Second} {
		t.Run(deadline.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				start := time.Now()
				s := failing(errThrottled)
				retries := 0
				err := StopWithRetry(ctx, s, "i-1",
					WithMaxAttempts(5), WithBackoff(time.Second, time.Minute), WithJitter(NoJitter),
					WithOnRetry(func(RetryInfo) { retries++ }))
				if elapsed := time.Since(start); elapsed != time.Second {
					t.Errorf("returned after %v, want 1s: no sleep may run into the deadline", elapsed)
				}
				if ctx.Err() != nil {
					t.Errorf("ctx already done at return: %v", ctx.Err())
				}
				re := asRetryError(t, err)
				if re.Cause != context.DeadlineExceeded || re.Last != errThrottled || re.Attempts != 2 {
					t.Errorf("RetryError = %+v, want Cause DeadlineExceeded, Last errThrottled, Attempts 2", *re)
				}
				if retries != 1 {
					t.Errorf("OnRetry fired %d times, want 1 (not for the sleep that was never started)", retries)
				}
			})
		})
	}
}

func TestStopWithRetryAttemptTimeoutRetriesHungCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		s := &recorder{answer: func(ctx context.Context, _ string, n int) error {
			if n < 3 {
				<-ctx.Done() // hangs until cut off
				return ctx.Err()
			}
			return nil
		}}
		err := StopWithRetry(context.Background(), s, "i-1",
			WithAttemptTimeout(5*time.Second), WithBackoff(time.Second, time.Minute), WithJitter(NoJitter),
			// A classifier that refuses deadline errors does not stop a
			// call cut off by the attempt timeout from being retried.
			WithRetryable(func(err error) bool { return !errors.Is(err, context.DeadlineExceeded) }))
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		want := []time.Duration{0, 6 * time.Second, 13 * time.Second}
		if got := s.offsets(start); !slices.Equal(got, want) {
			t.Errorf("calls at %v, want %v", got, want)
		}
	})
}

func TestStopWithRetryCallerContextEndingIsNotRetried(t *testing.T) {
	for _, tt := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 2*time.Second)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(2*time.Second, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := tt.ctx()
				defer cancel()
				s := &recorder{answer: func(ctx context.Context, _ string, _ int) error {
					<-ctx.Done()
					return fmt.Errorf("request: %w", ctx.Err())
				}}
				retries := 0
				err := StopWithRetry(ctx, s, "i-1", WithAttemptTimeout(5*time.Second), noWait,
					WithRetryable(func(error) bool { return true }),
					WithOnRetry(func(RetryInfo) { retries++ }))
				if s.count() != 1 || retries != 0 {
					t.Errorf("calls = %d, OnRetry fired %d times; want 1 call and no retry", s.count(), retries)
				}
				re := asRetryError(t, err)
				if !errors.Is(re.Cause, tt.want) || re.Attempts != 1 || re.Last == nil {
					t.Errorf("RetryError = %+v, want Cause %v, Attempts 1, Last kept", *re, tt.want)
				}
			})
		})
	}
}

func TestStopWithRetryPermanentIsCalledOnce(t *testing.T) {
	errAuth := errors.New("UnauthorizedOperation")
	for _, tt := range []struct {
		name string
		err  error
		opts []Option
	}{
		{"marked", Permanent(errAuth), nil},
		{"marked and wrapped", fmt.Errorf("terminate: %w", Permanent(errAuth)), nil},
		{"marked, classifier says retry", Permanent(errAuth), []Option{WithRetryable(func(error) bool { return true })}},
		{"refused by classifier", errAuth, []Option{WithRetryable(func(err error) bool { return !errors.Is(err, errAuth) })}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := failing(tt.err)
			err := StopWithRetry(context.Background(), s, "i-1", append(tt.opts, noWait)...)
			if s.count() != 1 {
				t.Errorf("calls = %d, want 1", s.count())
			}
			re := asRetryError(t, err)
			if re.Cause != ErrPermanent || re.Attempts != 1 || !errors.Is(err, errAuth) {
				t.Errorf("RetryError = %+v, want Cause ErrPermanent, Attempts 1, wrapping %v", *re, errAuth)
			}
		})
	}
}

func TestStopWithRetryGoneIsSuccess(t *testing.T) {
	for _, tt := range []struct {
		name      string
		failFirst int
		err       error
	}{
		{"plain", 0, ErrGone},
		{"wrapped", 0, fmt.Errorf("InvalidInstanceID.NotFound: %w", ErrGone)},
		{"joined", 0, errors.Join(errThrottled, ErrGone)},
		{"marked permanent", 0, Permanent(ErrGone)},
		{"after a failure", 1, ErrGone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &recorder{answer: func(_ context.Context, _ string, n int) error {
				if n <= tt.failFirst {
					return errThrottled
				}
				return tt.err
			}}
			exhausted := 0
			err := StopWithRetry(context.Background(), s, "i-1", noWait,
				WithOnExhausted(func(context.Context, *RetryError) { exhausted++ }))
			if err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			if want := tt.failFirst + 1; s.count() != want {
				t.Errorf("calls = %d, want %d", s.count(), want)
			}
			if exhausted != 0 {
				t.Errorf("OnExhausted called %d times on success", exhausted)
			}
		})
	}
}

func TestStopWithRetryOnExhaustedOncePerWayOfGivingUp(t *testing.T) {
	errAuth := errors.New("AuthFailure")
	hang := func(ctx context.Context, _ string, _ int) error { <-ctx.Done(); return ctx.Err() }
	for _, tt := range []struct {
		name     string
		ctx      func() (context.Context, context.CancelFunc)
		answer   func(context.Context, string, int) error
		opts     []Option
		attempts int
		cause    error
	}{
		{
			name:     "exhausted",
			answer:   func(context.Context, string, int) error { return errThrottled },
			attempts: 3, cause: ErrExhausted,
		},
		{
			name: "permanent",
			answer: func(_ context.Context, _ string, n int) error {
				if n == 1 {
					return errThrottled
				}
				return Permanent(errAuth)
			},
			attempts: 2, cause: ErrPermanent,
		},
		{
			name:     "refused by classifier",
			answer:   func(context.Context, string, int) error { return errAuth },
			opts:     []Option{WithRetryable(func(error) bool { return false })},
			attempts: 1, cause: ErrPermanent,
		},
		{
			name: "context done before the first call",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			answer:   func(context.Context, string, int) error { return nil },
			attempts: 0, cause: context.Canceled,
		},
		{
			name: "context cancelled during a sleep",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(1500*time.Millisecond, cancel)
				return ctx, cancel
			},
			answer:   func(context.Context, string, int) error { return errThrottled },
			opts:     []Option{WithBackoff(time.Second, time.Second), WithJitter(NoJitter)},
			attempts: 2, cause: context.Canceled,
		},
		{
			name: "context ends during a call",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Second)
			},
			answer:   hang,
			attempts: 1, cause: context.DeadlineExceeded,
		},
		{
			name: "next sleep would pass the deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Minute)
			},
			answer:   func(context.Context, string, int) error { return errThrottled },
			opts:     []Option{WithMaxAttempts(10), WithBackoff(40*time.Second, time.Hour), WithJitter(NoJitter)},
			attempts: 2, cause: context.DeadlineExceeded,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if tt.ctx != nil {
					ctx, cancel = tt.ctx()
				}
				defer cancel()
				var got []*RetryError
				err := StopWithRetry(ctx, &recorder{answer: tt.answer}, "i-1", append(tt.opts,
					WithOnExhausted(func(_ context.Context, re *RetryError) { got = append(got, re) }))...)
				if len(got) != 1 {
					t.Fatalf("OnExhausted called %d times, want 1", len(got))
				}
				if got[0] != err {
					t.Errorf("OnExhausted saw %v, want the returned error %v", got[0], err)
				}
				if got[0].Attempts != tt.attempts || !errors.Is(got[0].Cause, tt.cause) {
					t.Errorf("OnExhausted saw Attempts %d, Cause %v; want %d, %v", got[0].Attempts, got[0].Cause, tt.attempts, tt.cause)
				}
			})
		})
	}
}

func TestStopWithRetryRejectsBadInput(t *testing.T) {
	t.Run("empty id", func(t *testing.T) {
		s := failing(errThrottled)
		hooked := false
		err := StopWithRetry(context.Background(), s, "",
			WithOnExhausted(func(context.Context, *RetryError) { hooked = true }))
		if !IsPermanent(err) || !strings.HasPrefix(err.Error(), "teardown: ") {
			t.Errorf("err = %v, want a permanent teardown error", err)
		}
		if s.count() != 0 || hooked {
			t.Errorf("calls = %d, OnExhausted called = %v; want neither", s.count(), hooked)
		}
	})
	t.Run("nil stopper", func(t *testing.T) {
		err := StopWithRetry(context.Background(), nil, "i-1")
		if err == nil || !IsPermanent(err) {
			t.Errorf("err = %v, want a permanent error", err)
		}
	})
	for _, tt := range []struct {
		name string
		opt  Option
	}{
		{"zero attempts", WithMaxAttempts(0)},
		{"negative attempts", WithMaxAttempts(-1)},
		{"negative base", WithBackoff(-time.Second, time.Second)},
		{"negative max", WithBackoff(0, -time.Second)},
		{"max below base", WithBackoff(2*time.Second, time.Second)},
		{"negative attempt timeout", WithAttemptTimeout(-time.Second)},
		{"unknown jitter", WithJitter(Jitter(42))},
		{"zero concurrency", WithConcurrency(0)},
		{"zero batch size", WithBatchSize(0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := failing(errThrottled)
			err := StopWithRetry(context.Background(), s, "i-1", tt.opt)
			if !errors.Is(err, ErrConfig) || !strings.HasPrefix(err.Error(), "teardown: ") {
				t.Errorf("err = %v, want a teardown error wrapping ErrConfig", err)
			}
			if s.count() != 0 {
				t.Errorf("calls = %d, want 0", s.count())
			}
		})
	}
	t.Run("nil option is ignored", func(t *testing.T) {
		if err := StopWithRetry(context.Background(), &recorder{}, "i-1", nil); err != nil {
			t.Errorf("err = %v, want nil", err)
		}
	})
}
