package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/leakless/leakless/internal/pgdriver"
)

// Lease is one contender for a named leader lease: a row in the library's
// leakless_leases table. Each *Lease is a distinct holder; replicas that
// each call Lead on a Lease of the same name elect one leader among them.
// Its methods satisfy the sweeper's Leader interface.
//
// The lease uses the database's clock, never the replicas', and one
// statement per call, with no session state or advisory lock, so it works
// behind a transaction pooler. A holder that stops renewing (crashed,
// partitioned, paused) loses the lease once its ttl has passed since its
// last successful Lead, and another contender's Lead then takes it. A
// holder therefore calls Lead again well within ttl (every sweep pass, with
// ttl a few passes long) and does no leader work once Lead has not
// returned true for ttl.
type Lease struct {
	db     pgdriver.Executor
	sql    *statements
	name   string
	ttl    time.Duration
	holder string // random token naming this holder in the lease row
}

// leaseGrant is one successful Lead, as the database saw it.
type leaseGrant struct {
	term        int64     // counts up each time the lease changes hands
	from, until time.Time // the database's now() and the lease's new expiry
}

// TTL is how long the lease is held after each successful Lead. A
// sweeper renews a leader that reports it every third of it.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Lease returns a new holder of the lease called name, held for ttl after
// each successful Lead. An empty name or a ttl under a millisecond makes
// Lead and Release return an error wrapping ErrConfig.
func (p *Postgres) Lease(name string, ttl time.Duration) *Lease {
	token := make([]byte, 16)
	_, _ = rand.Read(token) // never fails; it crashes the program instead
	return &Lease{db: p.db, sql: &p.sql, name: name, ttl: ttl, holder: hex.EncodeToString(token)}
}

// Lead acquires the lease if it is free or expired, or renews it if this
// holder has it, and reports whether this holder now leads. It returns
// (false, nil) while another holder's lease is unexpired.
func (l *Lease) Lead(ctx context.Context) (bool, error) {
	_, ok, err := l.lead(ctx)
	return ok, err
}

func (l *Lease) lead(ctx context.Context) (leaseGrant, bool, error) {
	if err := l.valid(); err != nil {
		return leaseGrant{}, false, err
	}
	var g leaseGrant
	err := l.db.QueryRow(ctx, l.sql.lead, l.name, l.holder, l.ttl.Microseconds()).Scan(&g.term, &g.from, &g.until)
	switch {
	case isNoRows(err):
		return leaseGrant{}, false, nil
	case err != nil:
		return leaseGrant{}, false, fmt.Errorf("store: lease %q: lead: %w", l.name, err)
	}
	return g, true, nil
}

// Release gives the lease up at once if this holder has it, so another
// contender need not wait out the ttl. Releasing a lease this holder does
// not have is not an error.
func (l *Lease) Release(ctx context.Context) error {
	if err := l.valid(); err != nil {
		return err
	}
	if err := l.db.Exec(ctx, l.sql.release, l.name, l.holder); err != nil {
		return fmt.Errorf("store: lease %q: release: %w", l.name, err)
	}
	return nil
}

func (l *Lease) valid() error {
	switch {
	case l.name == "":
		return fmt.Errorf("%w: lease name is empty", ErrConfig)
	case l.ttl < time.Millisecond:
		return fmt.Errorf("%w: lease %q: ttl %v is under a millisecond", ErrConfig, l.name, l.ttl)
	}
	return nil
}
