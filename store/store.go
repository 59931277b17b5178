package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by RemoveTree when the root row does not exist.
var ErrNotFound = errors.New("store: not found")

// Table names the host's own table and the columns leakless reads.
type Table struct {
	Name       string // the table, optionally schema-qualified: "workspaces", "app.workspaces"
	ID         string // primary key column
	Status     string // status column
	InstanceID string // column holding the cloud instance id (NULL or '' when none)
	Parent     string // optional: parent id column, for cascades
	Removed    string // the terminal status value, e.g. "removed"
}

// Pending is a removed row that still holds an instance.
type Pending struct {
	ResourceID string // the row's id
	InstanceID string // the instance it still holds
	Attempts   int    // stop attempts recorded so far
	LastError  string // the last recorded failure, if any
}

// Known is what protects owned instances from row-gone reaping.
type Known struct {
	Held         map[string]bool // of the instance ids asked about: those some row holds (any status)
	Provisioning map[string]bool // of the resource ids asked about: live rows that hold no instance yet
}

// Store is the view of the host's table that teardown needs.
type Store interface {
	// Pending returns up to limit removed rows that still hold an instance
	// and are due for an attempt, oldest attempt first.
	Pending(ctx context.Context, limit int) ([]Pending, error)
	// Reaped clears the row's instance id, only if the row is still removed
	// and still holds p.InstanceID. It reports whether it cleared it.
	Reaped(ctx context.Context, p Pending) (bool, error)
	// Failed records a failed attempt and hides the row from Pending until
	// next. The stored attempt count is incremented atomically.
	Failed(ctx context.Context, p Pending, err error, next time.Time) error
	// RemoveTree marks rootID and every descendant removed in one
	// transaction and returns every row of the tree still holding an
	// instance, already-removed ones included.
	RemoveTree(ctx context.Context, rootID string) ([]Pending, error)
	// Known reports which of instanceIDs some row holds, and which of
	// resourceIDs are live rows that hold no instance yet.
	Known(ctx context.Context, resourceIDs, instanceIDs []string) (Known, error)
}
