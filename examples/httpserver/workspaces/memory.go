package workspaces

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
)

// Memory is the workspaces table in memory: both the API's [Rows] and the
// library's [store.Store], over one *store.Memory. Use the same *Memory for
// the API and the sweeper.
//
// store.Memory edits rows with Put, which replaces a whole row; Memory
// serialises its own read-modify-write steps with RemoveTree so that a
// workspace deleted while its instance launches is never put back to
// running.
type Memory struct {
	*store.Memory

	mu      sync.Mutex
	created map[string]time.Time
}

var (
	_ Rows        = (*Memory)(nil)
	_ store.Store = (*Memory)(nil)
)

// NewMemory returns an empty in-memory workspaces table; opts configure
// its store as for store.NewMemory.
func NewMemory(opts ...store.Option) *Memory {
	return &Memory{Memory: store.NewMemory(Table, opts...), created: map[string]time.Time{}}
}

// RemoveTree implements [store.Store], in step with Insert and Record.
func (m *Memory) RemoveTree(ctx context.Context, rootID string) ([]store.Pending, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.Memory.RemoveTree(ctx, rootID)
}

// Insert implements [Rows].
func (m *Memory) Insert(ctx context.Context, id, parentID string) (Workspace, error) {
	if err := ctx.Err(); err != nil {
		return Workspace{}, wrap("insert", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if parentID != "" {
		p, ok := m.Memory.Get(parentID)
		switch {
		case !ok:
			return Workspace{}, ErrNotFound
		case p.Status == StatusRemoved:
			return Workspace{}, ErrParentRemoved
		}
	}
	r := store.Row{ID: id, Parent: parentID, Status: StatusProvisioning}
	m.Memory.Put(r)
	m.created[id] = time.Now().UTC()
	return m.workspace(r), nil
}

// Record implements [Rows].
func (m *Memory) Record(ctx context.Context, id, instanceID string) (Workspace, error) {
	if err := ctx.Err(); err != nil {
		return Workspace{}, wrap("record", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.Memory.Get(id)
	if !ok || r.Status != StatusProvisioning {
		return Workspace{}, ErrNotProvisioning
	}
	r.Status, r.InstanceID = StatusRunning, instanceID
	m.Memory.Put(r)
	return m.workspace(r), nil
}

// Abandon implements [Rows].
func (m *Memory) Abandon(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, wrap("abandon", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.Memory.Get(id)
	if !ok || r.Status != StatusProvisioning || r.InstanceID != "" {
		return false, nil
	}
	r.Status = StatusRemoved
	m.Memory.Put(r)
	return true, nil
}

// Get implements [Rows].
func (m *Memory) Get(ctx context.Context, id string) (Workspace, error) {
	if err := ctx.Err(); err != nil {
		return Workspace{}, wrap("get", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.Memory.Get(id)
	if !ok {
		return Workspace{}, ErrNotFound
	}
	return m.workspace(r), nil
}

func (m *Memory) workspace(r store.Row) Workspace {
	return Workspace{ID: r.ID, ParentID: r.Parent, Status: r.Status, InstanceID: r.InstanceID, CreatedAt: m.created[r.ID]}
}

// MemoryEvents is an in-memory [events.Sink] that is also a [Ledger]: it
// stamps events that carry no time with the time they arrive (as the
// Postgres sink does), and lists them as the Postgres sink's List does,
// newest first, at most Limit.
type MemoryEvents struct{ *events.Memory }

// NewMemoryEvents returns an empty in-memory sink and ledger.
func NewMemoryEvents() MemoryEvents { return MemoryEvents{events.NewMemory()} }

// Emit implements [events.Sink].
func (l MemoryEvents) Emit(ctx context.Context, e events.Event) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	return l.Memory.Emit(ctx, e)
}

// List implements [Ledger].
func (l MemoryEvents) List(ctx context.Context, f events.Filter) ([]events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var out []events.Event
	for i, e := range slices.Backward(l.Events()) {
		e.ID = int64(i + 1) // insertion order, as the table's identity column
		switch {
		case f.Before != 0 && e.ID >= f.Before:
			continue
		case f.Type != "" && e.Type != f.Type,
			f.Subject != "" && e.Subject != f.Subject,
			!f.Since.IsZero() && e.At.Before(f.Since),
			!f.Until.IsZero() && !e.At.Before(f.Until):
			continue
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}
