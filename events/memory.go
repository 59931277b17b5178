package events

import (
	"context"
	"maps"
	"sync"
)

// Memory is a [Sink] that keeps events in memory, for tests and for hosts
// that only want to look at what happened. It is safe for concurrent use;
// the zero value is ready to use.
type Memory struct {
	mu     sync.Mutex
	events []Event
}

// NewMemory returns an empty in-memory sink.
func NewMemory() *Memory { return &Memory{} }

// Emit records e as given (a zero At stays zero) and never fails. It keeps
// its own copy of the payload map, so later changes to the caller's map do
// not show.
func (m *Memory) Emit(_ context.Context, e Event) error {
	e.Payload = maps.Clone(e.Payload)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

// Events returns a copy of every event emitted so far, in emit order.
// Each payload map is a copy too.
func (m *Memory) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Event, len(m.events))
	for i, e := range m.events {
		e.Payload = maps.Clone(e.Payload)
		out[i] = e
	}
	return out
}

// EmitBatch records every event, in order, as Emit does, and never fails.
func (m *Memory) EmitBatch(_ context.Context, events []Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range events {
		e.Payload = maps.Clone(e.Payload)
		m.events = append(m.events, e)
	}
	return nil
}
