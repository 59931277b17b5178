package events

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxWriteTries bounds how often one write is sent when the server keeps
// ending the connection under it; the write timeout bounds it too.
const maxWriteTries = 4

// retryLostConnection runs write until it succeeds, fails for a reason
// other than a lost connection, or runs out of tries or time.
//
// A pool hands out a connection the server has already ended (a restart,
// a failover, pg_terminate_backend) without noticing, and the write sent on
// it fails although the database never ran it. Without a second try the
// one record of a leak would be lost to a connection that was dead before
// the event existed.
func retryLostConnection(ctx context.Context, write func() error) error {
	delay := 10 * time.Millisecond
	for try := 1; ; try++ {
		err := write()
		if err == nil || try == maxWriteTries || !lostConnection(err) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay *= 4
	}
}

// lostConnection reports whether err says the statement never ran because
// its connection was gone: it failed before anything was sent, or the
// server answered with the error it sends when it ends a session (class 57P,
// operator intervention) or a connection exception (class 08). Ambiguous
// failures, such as a network error after the statement was sent, are not
// retried, so a committed event is never written twice.
func lostConnection(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || pgconn.SafeToRetry(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "08")
	}
	return false
}
