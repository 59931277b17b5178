package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/leakless/leakless/internal/pgdriver"
)

// Stats is what an operator asks of the store: how much is waiting to be
// stopped, for how long, and how much of it will not stop by retrying.
// Every count is of pending rows: removed rows that still hold an
// instance (of the store's location, for a view made with In).
type Stats struct {
	// Pending counts the pending rows not acknowledged with Forget: due
	// now, backing off after a failure, or in a stop's redrive grace.
	Pending int

	// OldestPending is the age, by the store's clock (the database's
	// now()), of the oldest first record among the rows Pending counts:
	// when the store first recorded the row's current instance, by its
	// first failed attempt or the grace RemoveTree or Stopping gave it.
	// Rows with no record yet (removed by the host's own UPDATE and not
	// attempted since) count in Pending but not here. It is 0 when no
	// counted row has a record. Records that existed when schema version
	// 2 was applied are dated from that migration.
	OldestPending time.Duration

	// Permanent counts, of Pending, the rows whose latest recorded
	// failure was permanent (an error with a Permanent() bool method
	// reporting true, as teardown.Permanent makes): retrying will not
	// help, a person has to look.
	Permanent int

	// Acknowledged counts the pending rows whose leak an operator
	// acknowledged with Forget: Pending never returns them again, and
	// their instances are left to whoever acknowledged them.
	Acknowledged int
}

// Stats reads the store's [Stats] in one statement, through the pending
// index.
func (p *Postgres) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	var oldestUS int64
	err := p.db.Query(ctx, p.sql.stats, []any{p.key}, func(r pgdriver.Row) error {
		return r.Scan(&s.Pending, &s.Permanent, &s.Acknowledged, &oldestUS)
	})
	if err != nil {
		return Stats{}, fmt.Errorf("store: stats: %w", err)
	}
	s.OldestPending = time.Duration(max(oldestUS, 0)) * time.Microsecond
	return s, nil
}

// Forget acknowledges the leak of a pending row (removed, still holding
// an instance): an operator has dealt with the instance by hand, or
// decided to keep it. Pending never returns the row again, while it
// holds that instance, and Stats counts it as acknowledged instead of
// pending. Its record is kept (attempts, last error) until the row's
// instance is cleared. Forget reports false, and writes nothing, for a
// row that does not exist or is not pending; acknowledging a row again
// reports true and keeps the first acknowledgement's time.
func (p *Postgres) Forget(ctx context.Context, resourceID string) (bool, error) {
	if !storable(resourceID) {
		return false, nil
	}
	var n int
	err := p.db.Query(ctx, p.sql.forget, []any{p.key, resourceID}, func(r pgdriver.Row) error { return r.Scan(&n) })
	if err != nil {
		return false, fmt.Errorf("store: forget %q: %w", resourceID, err)
	}
	return n > 0, nil
}

// Stats reads the store's [Stats], as [Postgres.Stats] does, by the time
// package's clock.
func (m *Memory) Stats(ctx context.Context) (Stats, error) {
	if err := m.check(ctx); err != nil {
		return Stats{}, fmt.Errorf("store: stats: %w", err)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	var s Stats
	var oldest time.Time
	for _, r := range m.st.rows {
		if r.Status != m.removed || r.InstanceID == "" || m.scoped && r.Location != m.location {
			continue
		}
		a, ok := m.attemptLocked(r)
		switch {
		case ok && !a.acknowledged.IsZero():
			s.Acknowledged++
			continue
		case ok && (oldest.IsZero() || a.first.Before(oldest)):
			oldest = a.first
		}
		s.Pending++
		if a.permanent {
			s.Permanent++
		}
	}
	if !oldest.IsZero() {
		s.OldestPending = max(time.Since(oldest), 0)
	}
	return s, nil
}

// Forget acknowledges the leak of a pending row. See [Postgres.Forget].
func (m *Memory) Forget(ctx context.Context, resourceID string) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, fmt.Errorf("store: forget %q: %w", resourceID, err)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	r, ok := m.st.rows[resourceID]
	if !ok || r.Status != m.removed || r.InstanceID == "" {
		return false, nil
	}
	now := time.Now()
	a, ok := m.attemptLocked(r)
	if !ok {
		a = attempt{instanceID: r.InstanceID, first: now}
	}
	if a.acknowledged.IsZero() {
		a.acknowledged = now
	}
	a.next = forever
	m.st.attempts[r.ID] = a
	m.indexLocked(r.ID, now)
	return true, nil
}

// forever is the due time of an acknowledged row in a Memory store, its
// 'infinity'.
var forever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// isPermanent reports whether err, or an error it wraps, says it is
// permanent through a Permanent() bool method, as teardown.Permanent's
// errors do. The store learns it from the error itself, so it depends on
// no stopper's package.
func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
