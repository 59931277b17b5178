package events

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The backoff between tries of one write that never reached the database.
const (
	firstRetryDelay = 50 * time.Millisecond
	maxRetryDelay   = 500 * time.Millisecond
)

// retryUnsent runs write until it succeeds, fails in a way that may have
// committed, or ctx ends, sleeping firstRetryDelay, doubling up to
// maxRetryDelay, between tries.
//
// A database restart or failover takes seconds, and the event written
// during it is often the one record of a leak: so a write that certainly
// did not commit — no connection could be had, or the server ended the
// one it was sent on before running it — is sent again for as long as the
// write's own deadline allows. A pool also hands out connections the
// server ended while they sat idle, and without a second try the event
// would be lost to a connection that was dead before the event existed.
func retryUnsent(ctx context.Context, write func() error) error {
	delay := firstRetryDelay
	start := time.Now()
	var last error // the last failure that said why, for when the deadline cuts a try short
	for try := 1; ; try++ {
		err := write()
		if err != nil && last != nil && (ctx.Err() != nil || timedOut(err)) {
			// The deadline cut this try short: the failure before it says why.
			return gaveUp(ctx, last, try, start)
		}
		if err == nil || !unsent(err) {
			return err
		}
		last = err
		wait := delay
		if deadline, ok := ctx.Deadline(); ok {
			left := time.Until(deadline)
			if left <= time.Millisecond {
				return gaveUp(ctx, err, try, start)
			}
			// Keep the last try inside the deadline rather than sleeping past it.
			wait = min(wait, left/2)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return gaveUp(ctx, err, try, start)
		case <-t.C:
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// gaveUp keeps both the last write's error and why trying stopped.
func gaveUp(ctx context.Context, err error, tries int, start time.Time) error {
	why := ctx.Err()
	if why == nil {
		why = context.DeadlineExceeded
	}
	return fmt.Errorf("%w (%d tries in %v: %w)", err, tries, time.Since(start).Round(time.Millisecond), why)
}

// timedOut reports whether err is a try cut short by its deadline; a dial's
// own timeout can fire a moment before the context's.
func timedOut(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || (errors.As(err, &netErr) && netErr.Timeout())
}

// unsent reports whether err says the statement certainly did not commit,
// so sending it again cannot write it twice: no connection could be made
// (refused, reset during the handshake, the pool could not acquire one),
// the driver failed before sending anything, or the server answered with
// the error it sends when it ends a session (class 57P, operator
// intervention) or a connection exception (class 08). Ambiguous failures,
// such as a connection lost after the statement was sent, are not retried.
func unsent(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the write's own deadline: trying again cannot help
	}
	if errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "08")
	}
	return false
}
