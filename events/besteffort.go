package events

import (
	"context"
	"errors"
	"log/slog"
)

// BestEffort returns a [Sink] that never fails its caller: when s cannot
// write an event, it logs the event in full (type, subject, time if set,
// payload) with the error, at level Error, so the log keeps the record the
// sink lost, and returns nil. A nil log means slog.Default(), looked up at
// each failure; to discard failures, pass a logger whose handler drops
// everything.
//
// The sink is a [BatchSink]: a batch goes to s through [EmitAll], and each
// event of it that s did not record is logged as above.
//
// Use it where an event is worth having but never worth failing teardown
// for. Since [Exhausted] has no error to return, wrapping its sink in
// BestEffort is how a failed write gets seen.
func BestEffort(s Sink, log *slog.Logger) Sink { return bestEffort{s: s, log: log} }

// errNoSink is what BestEffort logs for a nil sink: the event survives in the log.
var errNoSink = errors.New("events: no sink")

type bestEffort struct {
	s   Sink
	log *slog.Logger
}

func (b bestEffort) Emit(ctx context.Context, e Event) error {
	err := errNoSink
	if b.s != nil {
		err = b.s.Emit(ctx, e)
	}
	if err == nil {
		return nil
	}
	b.lost(ctx, e, err)
	return nil
}

func (b bestEffort) EmitBatch(ctx context.Context, events []Event) error {
	err := errNoSink
	if b.s != nil {
		err = EmitAll(ctx, b.s, events)
	}
	if err == nil {
		return nil
	}
	for _, e := range events[written(err):] {
		b.lost(ctx, e, err)
	}
	return nil
}

// lost logs e, which s could not write because of err.
func (b bestEffort) lost(ctx context.Context, e Event, err error) {
	log := b.log
	if log == nil {
		log = slog.Default()
	}
	attrs := make([]slog.Attr, 0, 5)
	attrs = append(attrs, slog.String("type", e.Type), slog.String("subject", e.Subject))
	if !e.At.IsZero() {
		attrs = append(attrs, slog.Time("at", e.At))
	}
	attrs = append(attrs, slog.Any("payload", e.Payload), slog.Any("error", err))
	log.LogAttrs(ctx, slog.LevelError, "events: event not written", attrs...)
}
