package events

import (
	"context"
	"errors"
)

// Multi returns a [Sink] that emits every event to each of sinks, in
// order, even when an earlier one fails; its error joins theirs
// (errors.Join), so errors.Is and errors.As see each of them. Nil sinks are
// skipped. The sink is a [BatchSink]: a batch goes to each of sinks through
// [EmitAll], so a wrapped Postgres sink still writes it in one COPY.
func Multi(sinks ...Sink) Sink {
	m := make(multi, 0, len(sinks))
	for _, s := range sinks {
		if s != nil {
			m = append(m, s)
		}
	}
	return m
}

type multi []Sink

func (m multi) Emit(ctx context.Context, e Event) error {
	var errs []error
	for _, s := range m {
		if err := s.Emit(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m multi) EmitBatch(ctx context.Context, events []Event) error {
	var errs []error
	for _, s := range m {
		if err := EmitAll(ctx, s, events); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
