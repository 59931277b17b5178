package awsec2

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// wait takes n tokens from l, sleeping until they are there. It fails at
// once, without taking any, when they would come after ctx's deadline:
// the error then wraps context.DeadlineExceeded, so teardown treats it as
// the attempt's deadline (retried) or the caller's (not).
func wait(ctx context.Context, l *rate.Limiter, n int) error {
	if err := l.WaitN(ctx, n); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("awsec2: waiting for the rate limiter: %w", ctx.Err())
		}
		return fmt.Errorf("awsec2: rate limiter: %d tokens would come after the deadline: %w", n, context.DeadlineExceeded)
	}
	return nil
}

// drain empties l: EC2 has said the account's budget is spent, so nothing
// more is sent until the bucket has refilled, whichever caller asks.
func drain(l *rate.Limiter) {
	now := time.Now()
	if n := int(l.TokensAt(now)); n > 0 {
		l.ReserveN(now, n)
	}
}
