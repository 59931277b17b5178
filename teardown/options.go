package teardown

import (
	"context"
	"fmt"
	"time"
)

// Defaults for the options below.
const (
	DefaultMaxAttempts = 3
	DefaultBackoffBase = 1 * time.Second
	DefaultBackoffMax  = 20 * time.Second
	DefaultConcurrency = 8
	DefaultBatchSize   = 500
)

// Option configures [StopWithRetry] and [StopAll].
type Option func(*config)

// RetryInfo describes a failed attempt that will be retried.
type RetryInfo struct {
	ID      string
	Attempt int           // 1-based number of the attempt that failed
	Err     error         // the error it returned
	Delay   time.Duration // how long the loop sleeps before the next attempt
}

type config struct {
	maxAttempts    int
	base, max      time.Duration
	jitter         Jitter
	attemptTimeout time.Duration
	retryable      func(error) bool
	onRetry        func(RetryInfo)
	onExhausted    func(context.Context, *RetryError)
	concurrency    int
	batchSize      int
	rand           func() uint64 // jitter source; tests replace it

	err error // first invalid option seen
}

func (c *config) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
}

// newConfig applies opts over the defaults and validates the result.
func newConfig(opts []Option) config {
	c := config{
		maxAttempts: DefaultMaxAttempts,
		base:        DefaultBackoffBase,
		max:         DefaultBackoffMax,
		jitter:      FullJitter,
		concurrency: DefaultConcurrency,
		batchSize:   DefaultBatchSize,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithMaxAttempts sets the total number of calls, including the first.
// The default is 3; n must be at least 1.
func WithMaxAttempts(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.invalid("max attempts must be at least 1, got %d", n)
			return
		}
		c.maxAttempts = n
	}
}

// WithBackoff sets the capped exponential backoff: the n-th retry waits up to
// min(max, base·2^(n-1)) before jitter. The default is 1s, 20s. Neither may
// be negative, and max must not be less than base.
func WithBackoff(base, max time.Duration) Option {
	return func(c *config) {
		switch {
		case base < 0 || max < 0:
			c.invalid("backoff durations must not be negative, got base %v, max %v", base, max)
			return
		case max < base:
			c.invalid("backoff max %v is less than base %v", max, base)
			return
		}
		c.base, c.max = base, max
	}
}

// WithJitter sets how each backoff delay is randomised. The default is
// [FullJitter].
func WithJitter(j Jitter) Option {
	return func(c *config) {
		if j < NoJitter || j > DecorrelatedJitter {
			c.invalid("unknown jitter %d", int(j))
			return
		}
		c.jitter = j
	}
}

// WithAttemptTimeout gives every call its own deadline, derived from the
// caller's context. An attempt cut off by it while the caller's context is
// still live is retried. The default, 0, sets no per-call deadline.
func WithAttemptTimeout(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.invalid("attempt timeout must not be negative, got %v", d)
			return
		}
		c.attemptTimeout = d
	}
}

// WithRetryable overrides which errors are retried: f reports whether err is
// worth another attempt, and an error it refuses ends the loop with Cause
// [ErrPermanent]. The default retries every error except those marked
// [Permanent], [ErrGone], and the caller's context ending; those three are
// never retried, whatever f says, and a call cut off by [WithAttemptTimeout]
// while the caller's context is live is always retried.
func WithRetryable(f func(error) bool) Option {
	return func(c *config) { c.retryable = f }
}

// WithOnRetry calls f after a failed attempt when, and only when, another
// attempt will follow: after the attempt limit, the retry classifier and the
// context's deadline have all agreed, just before the loop sleeps for
// info.Delay. It never fires after the final attempt. (A context cancelled
// during that sleep still ends the loop, through [WithOnExhausted].)
func WithOnRetry(f func(RetryInfo)) Option {
	return func(c *config) { c.onRetry = f }
}

// WithOnExhausted calls f once whenever [StopWithRetry] gives up, whatever
// the reason: attempts exhausted, a permanent error, or the context ending;
// [StopAll] calls it once per id it gives up on. f receives the very
// *RetryError the call returns. It is not called for arguments rejected before
// any attempt (a bad option, a nil stopper, an empty id), nor for a stop that
// is pending ([ErrPending]): nothing was given up.
// The context passed to f is the caller's and may already be done; a sink
// that must persist the failure should not depend on it (events.Exhausted
// does not).
func WithOnExhausted(f func(context.Context, *RetryError)) Option {
	return func(c *config) { c.onExhausted = f }
}

// WithConcurrency bounds how many stops [StopAll] runs at once. The default
// is 8; n must be at least 1.
func WithConcurrency(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.invalid("concurrency must be at least 1, got %d", n)
			return
		}
		c.concurrency = n
	}
}

// WithBatchSize sets how many ids [StopAll] hands a [BatchStopper] per call.
// The default is 500; n must be at least 1.
func WithBatchSize(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.invalid("batch size must be at least 1, got %d", n)
			return
		}
		c.batchSize = n
	}
}
