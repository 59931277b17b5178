package events

import (
	"context"
	"errors"
)

// BatchSink is a [Sink] that can also record many events at once, as
// [Postgres] does in one COPY. [Memory], [Multi], [BestEffort] and [Spool]
// are BatchSinks too, passing batches through to the sinks they wrap.
type BatchSink interface {
	Sink
	// EmitBatch records events in order. An error means some were not
	// recorded; a *BatchError says how many, from the start, were.
	EmitBatch(ctx context.Context, events []Event) error
}

// EmitAll records events to s in order: in one EmitBatch when s is a
// [BatchSink], else one Emit at a time, stopping at the first failure,
// which it reports as a *[BatchError] whose Written counts the events
// recorded before it. Nil or empty events is a no-op.
func EmitAll(ctx context.Context, s Sink, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	if b, ok := s.(BatchSink); ok {
		return b.EmitBatch(ctx, events)
	}
	for i, e := range events {
		if err := s.Emit(ctx, e); err != nil {
			return &BatchError{Written: i, Total: len(events), Err: err}
		}
	}
	return nil
}

// written returns how many events, from the start of a batch, err says
// were recorded: a *BatchError's Written, else none.
func written(err error) int {
	var be *BatchError
	if errors.As(err, &be) {
		return be.Written
	}
	return 0
}
