package events

import (
	"context"
	"time"
)

// Event is one structured record of something teardown did or failed to do.
type Event struct {
	// ID is the event's row id, set by [Postgres.List] and zero elsewhere;
	// sinks ignore it. It orders events by insertion, and Filter.Before
	// takes it to page through a listing.
	ID      int64
	Type    string         // one of the Type constants, or the host's own
	Subject string         // the resource (row) id it is about
	Payload map[string]any // JSON-marshallable details
	At      time.Time      // when it happened; zero means "now" to sinks that store it

	// Key, when set, makes writing the event idempotent: the Postgres sink
	// stores at most one event with a given key, so a write that is tried
	// again after a failure that may have committed (a connection lost
	// between the commit and its answer) is not stored twice. [Spool] gives
	// every event it is handed a random key; a caller that retries writes
	// of its own sets one itself. Sinks that cannot honour it ignore it.
	Key string
}

// Sink receives events. Implementations must be safe for concurrent use.
type Sink interface {
	// Emit records e. An error means e was not recorded.
	Emit(ctx context.Context, e Event) error
}

// The event types leakless emits.
const (
	// TypeRetryExhausted is emitted when StopWithRetry gives up on an
	// instance (through Exhausted).
	TypeRetryExhausted = "teardown.retry_exhausted"
	// TypeReaped is emitted when the sweeper stopped a removed row's
	// instance and cleared the row.
	TypeReaped = "sweeper.reaped"
	// TypeReapFailed is emitted when the sweeper could not stop a removed
	// row's instance.
	TypeReapFailed = "sweeper.reap_failed"
	// TypeRowGoneDetected is emitted when an owned instance has no row that
	// explains it.
	TypeRowGoneDetected = "sweeper.row_gone_detected"
	// TypeRowGoneTerminated is emitted when the sweeper terminated a
	// confirmed row-gone instance.
	TypeRowGoneTerminated = "sweeper.row_gone_terminated"
	// TypeSweepAborted is emitted when the row-gone part of a pass
	// terminated nothing, for the reason given.
	TypeSweepAborted = "sweeper.aborted"
	// TypeDryRun is emitted when the sweeper would have terminated an
	// instance but was told not to.
	TypeDryRun = "sweeper.dry_run"
)
