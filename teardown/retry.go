package teardown

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var (
	errEmptyID    = Permanent(errors.New("teardown: empty instance id"))
	errNilStopper = Permanent(errors.New("teardown: nil stopper"))
	noCancel      = context.CancelFunc(func() {})
)

// StopWithRetry stops the instance id with s, retrying failed calls with
// capped exponential backoff until one succeeds, the error is not worth
// retrying, the attempts run out, or ctx ends.
//
// It returns nil when the instance is stopped or gone ([ErrGone], wrapped or
// not), and otherwise a *[RetryError] that keeps the stopper's last error.
// Before any call it rejects bad arguments, without calling s or any hook: an
// invalid option yields an error wrapping [ErrConfig], and a nil s or an
// empty id an error marked [Permanent].
//
// The loop never sleeps past ctx's deadline: when the next sleep would end at
// or after it, StopWithRetry returns at once with Cause
// context.DeadlineExceeded rather than wake up to a dead context.
func StopWithRetry(ctx context.Context, s Stopper, id string, opts ...Option) error {
	c := newConfig(opts)
	if err := c.check(s); err != nil {
		return err
	}
	if id == "" {
		return errEmptyID
	}
	return c.stop(ctx, s, id)
}

// check rejects what no loop can run with.
func (c *config) check(s Stopper) error {
	if c.err != nil {
		return c.err
	}
	if f, ok := s.(StopperFunc); s == nil || ok && f == nil {
		return errNilStopper
	}
	return nil
}

// stop is the retry loop for one id.
func (c *config) stop(ctx context.Context, s Stopper, id string) error {
	p := c.pacer()
	defer p.stop()
	var last error
	for attempt := 1; ; attempt++ {
		// Checked before every call, the first included, and so also right
		// after each sleep: a context that ended while the timer fired wins.
		if ctx.Err() != nil {
			return c.giveUp(ctx, id, attempt-1, contextCause(ctx), last)
		}
		actx, cancel := c.attemptContext(ctx)
		err := s.Stop(actx, id)
		cut := actx.Err() != nil
		cancel()

		done, cause := c.classify(ctx, err, cut)
		if done {
			return nil
		}
		last = err
		if cause == nil {
			cause = p.wait(ctx, attempt, func(d time.Duration) {
				c.retrying(id, attempt, err, d)
			})
		}
		if cause != nil {
			return c.giveUp(ctx, id, attempt, cause, last)
		}
	}
}

// attemptContext derives the context for one call. With no attempt timeout
// the call runs on ctx itself, which costs nothing.
func (c *config) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.attemptTimeout == 0 {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, c.attemptTimeout)
}

// classify judges the result of one call. done means the instance is
// stopped or gone. Otherwise a nil cause means the call is worth repeating,
// and a non-nil one is why the loop must give up. cut reports that the
// call's own context had ended when it returned.
func (c *config) classify(ctx context.Context, err error, cut bool) (done bool, cause error) {
	switch {
	case err == nil || errors.Is(err, ErrGone):
		return true, nil
	case ctx.Err() != nil:
		// The caller's context ending is never retried, whatever the
		// classifier says: nobody is waiting for the answer any more.
		return false, contextCause(ctx)
	case IsPermanent(err):
		return false, ErrPermanent
	case errors.Is(err, ErrPending):
		return false, ErrPending
	case cut:
		// The caller's context is live, so only WithAttemptTimeout can have
		// ended this call: a hung call is the transient failure that
		// option exists to retry.
		return false, nil
	case c.retryable != nil && !c.retryable(err):
		return false, ErrPermanent
	}
	return false, nil
}

func (c *config) retrying(id string, attempt int, err error, d time.Duration) {
	if c.onRetry != nil {
		c.onRetry(RetryInfo{ID: id, Attempt: attempt, Err: err, Delay: d})
	}
}

// giveUp builds the loop's final error and reports it to OnExhausted, the
// one place every way of giving up passes through. A pending stop was not
// given up, so it is not reported.
func (c *config) giveUp(ctx context.Context, id string, attempts int, cause, last error) error {
	err := &RetryError{ID: id, Attempts: attempts, Cause: cause, Last: last}
	if c.onExhausted != nil && cause != ErrPending {
		c.onExhausted(ctx, err)
	}
	return err
}

// contextCause is why ctx ended, in a form that satisfies errors.Is for both
// ctx.Err() and the cause given to context.WithCancelCause or
// context.WithDeadlineCause, so callers need not know which kind of context
// they were handed.
func contextCause(ctx context.Context) error {
	err := ctx.Err()
	switch cause := context.Cause(ctx); {
	case cause == nil:
		return err
	case errors.Is(cause, err):
		return cause
	default:
		return fmt.Errorf("%w: %w", err, cause)
	}
}

// pacer spaces the attempts of one loop: it owns the backoff state and the
// loop's single timer, made on the first sleep and reset for every later one.
type pacer struct {
	maxAttempts int
	backoff     backoff
	timer       *time.Timer
}

func (c *config) pacer() pacer {
	return pacer{maxAttempts: c.maxAttempts, backoff: c.backoff()}
}

// wait decides whether another attempt follows failed attempt n and, if one
// does, sleeps until it is due. It returns nil to go on, or the cause to give
// up with. retrying is called with the delay only once the sleep is certain
// to start, so it never fires after the final attempt.
func (p *pacer) wait(ctx context.Context, n int, retrying func(time.Duration)) error {
	if n >= p.maxAttempts {
		return ErrExhausted
	}
	d := p.backoff.next(n)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
		// Sleeping into the deadline only to wake to a dead context would
		// hold the caller for nothing and hide why the loop stopped.
		return context.DeadlineExceeded
	}
	retrying(d)
	if d == 0 {
		return nil
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
		return nil
	case <-ctx.Done():
		return contextCause(ctx)
	}
}

func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}
