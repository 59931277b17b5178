package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by RemoveTree when the root row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConfig is wrapped by every error that reports a bad [Table], [Option] or
// lease setting.
var ErrConfig = errors.New("store: invalid configuration")

// Table names the host's own table and the columns leakless reads. The host
// keeps its table as it is; only the names are configuration.
//
// Names must be plain identifiers (ASCII letters, digits and underscores, not
// starting with a digit, at most 63 bytes); Name may carry one schema
// qualifier. Every name is double-quoted in SQL, so it is matched exactly,
// case included.
//
// An instance id is held by one row at a time: a removed row that still
// holds an instance is pending, and its instance will be stopped. A host
// that hands an instance over to a new row clears it from the old row in
// the same transaction; a unique index on the instance column, which also
// serves [Store.Known], enforces that.
type Table struct {
	Name       string // the table, optionally schema-qualified: "workspaces", "app.workspaces"
	ID         string // primary key column: text, uuid, bigint or any type with a text form
	Status     string // status column
	InstanceID string // column holding the cloud instance id (NULL or '' when none; it may be NOT NULL DEFAULT '')
	Parent     string // optional: parent id column, for cascades; empty means every tree is its root alone
	Removed    string // the terminal status value, e.g. "removed"

	// Location optionally names the column that says where a row's
	// instance lives: a region, or "account/region", in whatever form the
	// host's router takes. NULL or '' is the default location. With it,
	// [Postgres.In] scopes a store to one location, so one sweeper (and
	// one lease) per location drains each region within its own EC2
	// budget.
	Location string
}

// Pending is a removed row that still holds an instance.
type Pending struct {
	ResourceID string // the row's id, in its text form
	InstanceID string // the instance it still holds
	Attempts   int    // failed stop attempts recorded for this instance so far
	LastError  string // the last recorded failure, if any (truncated)

	// NotFoundFor is how long, by the store's clock, every recorded attempt
	// has been answered with teardown.ErrNotFound (the cloud neither knows
	// nor lists the instance); 0 when the last recorded attempt was not.
	// The sweeper takes the instance as gone once this exceeds its settle
	// window: EC2 answers NotFound for an instance it has not propagated yet.
	NotFoundFor time.Duration
}

// Known is what protects owned instances from row-gone reaping. Every map
// but Stopping is non-nil, and each holds only true entries: an id asked
// about and absent is not known.
type Known struct {
	Held         map[string]bool // of the instance ids asked about: those some row holds (any status)
	Provisioning map[string]bool // of the resource ids asked about: live rows that hold no instance yet
	Removed      map[string]bool // of the resource ids asked about: rows whose status is removed
	// Stopping is, of the removed rows, those still holding an instance
	// whose stop has not failed for good: the re-drive's to finish,
	// dependents included. Optional for a host's own Store: nil says
	// nothing (Postgres and Memory fill it).
	Stopping map[string]bool

	// Now is the store's clock (the database's, for Postgres) at the read.
	// Instance ages are measured against it, never against the replica's
	// own clock, which may be off by hours.
	Now time.Time
}

// Store is the view of the host's table that teardown needs. [Postgres] and
// [Memory] implement it with the same semantics.
type Store interface {
	// Pending returns up to limit removed rows that still hold an instance
	// and are due for an attempt: never-attempted rows first, then
	// attempted ones, the one due longest first, so a row that keeps
	// failing never starves the rest.
	Pending(ctx context.Context, limit int) ([]Pending, error)

	// Reaped clears the row's instance id, only if the row is still removed
	// and still holds p.InstanceID (compare-and-set), and forgets its
	// attempt state. It reports whether it cleared it; false means the row
	// changed meanwhile (or is gone) and nothing was written.
	Reaped(ctx context.Context, p Pending) (bool, error)

	// Failed records a failed attempt on p's row and hides it from Pending
	// for delay, measured by the store's clock (the database's now() +
	// delay, so a replica's skewed clock decides nothing); zero leaves it
	// due. The stored attempt count is incremented atomically and restarts
	// at 1 when the row holds a different instance than the one last
	// recorded; p.Attempts is informational. When err wraps
	// teardown.ErrNotFound the time of the first such answer is kept (see
	// Pending.NotFoundFor); any other error forgets it. A row that no
	// longer exists records nothing.
	Failed(ctx context.Context, p Pending, err error, delay time.Duration) error

	// RemoveTree marks rootID and every descendant removed, whatever their
	// status, in one transaction, and returns every row of the tree still
	// holding an instance, already-removed ones included, so a retried
	// delete re-drives their stops. A child committed while RemoveTree
	// waited for its parent's lock is part of the tree. The caller is
	// taken to stop the holders itself: Pending leaves them out for the
	// redrive grace (see [WithRedriveGrace]). The result is ordered by
	// ResourceID. An unknown root is an error wrapping ErrNotFound.
	RemoveTree(ctx context.Context, rootID string) ([]Pending, error)

	// Known reports which of instanceIDs some row holds, which of
	// resourceIDs name a live (not removed) row that holds no instance yet
	// and which name a removed row, and the store's clock at the read.
	// Resource ids match case-insensitively, so a uuid written in upper case
	// still protects its instance.
	Known(ctx context.Context, resourceIDs, instanceIDs []string) (Known, error)
}

// BatchStore is a Store that records a page of results in one statement
// each: the sweeper uses these methods when its store has them, so a page
// of 500 rows costs two round trips instead of 500. Each row is still a
// compare-and-set of its own, with the semantics of Reaped and Failed.
// [Postgres] and [Memory] implement it; a Store of the host's own need
// not, and is then called row by row.
type BatchStore interface {
	Store

	// ReapedAll is Reaped for every row of ps: cleared[i] reports whether
	// ps[i]'s row was cleared. A row listed twice is cleared once. On an
	// error nothing was written.
	ReapedAll(ctx context.Context, ps []Pending) (cleared []bool, err error)

	// FailedAll is Failed for every entry of fs. A row listed twice is
	// recorded once, with its last entry. On an error nothing was written.
	FailedAll(ctx context.Context, fs []Failure) error
}

// Failure is one failed attempt, for [BatchStore.FailedAll]: Failed's
// arguments.
type Failure struct {
	Pending Pending       // the row and the instance attempted
	Err     error         // the attempt's error
	Delay   time.Duration // how long the row stays hidden from Pending, by the store's clock
}

// distinctFailures returns fs with one entry per row, its last, in the
// order of those last entries.
func distinctFailures(fs []Failure) []Failure {
	last := make(map[string]int, len(fs))
	for i, f := range fs {
		last[f.Pending.ResourceID] = i
	}
	if len(last) == len(fs) {
		return fs
	}
	out := make([]Failure, 0, len(last))
	for i, f := range fs {
		if last[f.Pending.ResourceID] == i {
			out = append(out, f)
		}
	}
	return out
}
