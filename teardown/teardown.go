package teardown

import (
	"context"
	"time"
)

// Stopper stops (or terminates) one cloud instance.
//
// Stop returns nil when the instance is stopped, an error wrapping [ErrGone]
// when it no longer exists (which callers treat as success), an error marked
// with [Permanent] when retrying cannot help, and any other error when a
// later attempt may succeed.
type Stopper interface {
	Stop(ctx context.Context, id string) error
}

// StopperFunc adapts an ordinary function to the [Stopper] interface.
type StopperFunc func(ctx context.Context, id string) error

// Stop calls f(ctx, id).
func (f StopperFunc) Stop(ctx context.Context, id string) error { return f(ctx, id) }

// BatchStopper is a [Stopper] that can stop many instances in one call,
// as EC2's TerminateInstances does.
type BatchStopper interface {
	Stopper
	// StopBatch tries every id. The result has one entry per input id:
	// nil (or an error wrapping ErrGone) means stopped or gone; any other
	// error is classified as Stop's errors are.
	StopBatch(ctx context.Context, ids []string) map[string]error
}

// Instance is one cloud instance as an [Inventory] reports it.
type Instance struct {
	ID    string
	State string
	// Type is the instance's type (its size), such as "m5.large", when
	// the inventory reports it.
	Type       string
	LaunchedAt time.Time
	Tags       map[string]string
	// Location says where the instance lives when an inventory spans
	// several: a region, or "account/region", as awsec2.Router names its
	// locations. "" is the single default location, and what an inventory
	// of one location (such as one awsec2.Client) reports.
	Location string
}

// Inventory lists the instances this deployment owns.
//
// Owned must return only instances that carry the deployment's ownership
// tags (key and value), and must return an error rather than an unfiltered
// list when it has no ownership filter: a sweeper that reaps "everything it
// cannot explain" must never be handed everything.
type Inventory interface {
	Owned(ctx context.Context) ([]Instance, error)
}

// Describer is an [Inventory] that can also look instances up by id. A
// sweeper re-checks its row-gone candidates with it just before counting
// them, so an instance that a delete in flight terminated (and whose row
// it cleared) between the listing and the store read is not mistaken for
// an orphan.
//
// Describe returns the current state of those of ids that exist and carry
// the deployment's ownership tags, in any state (shutting-down and
// terminated included); an id it does not return is unknown or not owned.
type Describer interface {
	Inventory
	Describe(ctx context.Context, ids []string) ([]Instance, error)
}
