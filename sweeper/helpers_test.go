package sweeper

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// table is the host table every test uses.
var table = store.Table{
	Name:       "workspaces",
	ID:         "id",
	Status:     "status",
	InstanceID: "instance_id",
	Parent:     "parent_id",
	Removed:    "removed",
}

// recorder is a Stopper whose answers are scripted per id. It records every
// call with the time it started, so synctest tests can assert the schedule.
type recorder struct {
	mu     sync.Mutex
	calls  []call
	answer func(ctx context.Context, id string) error // nil: every stop succeeds
}

type call struct {
	id string
	at time.Time
}

func (r *recorder) Stop(ctx context.Context, id string) error {
	r.mu.Lock()
	r.calls = append(r.calls, call{id: id, at: time.Now()})
	answer := r.answer
	r.mu.Unlock()
	if answer == nil {
		return nil
	}
	return answer(ctx, id)
}

// callsFor returns when each call for id started, relative to start.
func (r *recorder) callsFor(id string, start time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for _, c := range r.calls {
		if c.id == id {
			out = append(out, c.at.Sub(start))
		}
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// ids returns the ids stopped so far, sorted.
func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.calls))
	for _, c := range r.calls {
		out = append(out, c.id)
	}
	slices.Sort(out)
	return out
}

// newSweeper is New that fails the test on error.
func newSweeper(t *testing.T, st store.Store, s teardown.Stopper, opts ...Option) *Sweeper {
	t.Helper()
	sw, err := New(st, s, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return sw
}

// ofType returns the events of type typ, in emit order.
func ofType(sink *events.Memory, typ string) []events.Event {
	var out []events.Event
	for _, e := range sink.Events() {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// subjects returns the sorted subjects of the events of type typ.
func subjects(sink *events.Memory, typ string) []string {
	var out []string
	for _, e := range ofType(sink, typ) {
		out = append(out, e.Subject)
	}
	slices.Sort(out)
	return out
}

// putRemoved adds n removed rows r0…r(n-1) holding instances i-0…i-(n-1).
func putRemoved(m *store.Memory, n int, prefix string) {
	for i := range n {
		m.Put(store.Row{ID: prefix + "r" + strconv.Itoa(i), Status: "removed", InstanceID: prefix + "i-" + strconv.Itoa(i)})
	}
}

// inventoryFunc adapts a function to teardown.Inventory; a nil one owns
// nothing.
type inventoryFunc func(ctx context.Context) ([]teardown.Instance, error)

func (f inventoryFunc) Owned(ctx context.Context) ([]teardown.Instance, error) {
	if f == nil {
		return nil, nil
	}
	return f(ctx)
}

// hostDB is the host's table in a Postgres schema of the test's own, with
// the store over it.
type hostDB struct {
	db *pgtest.DB
	st *store.Postgres
}

const hostSchema = `CREATE TABLE workspaces (
	id          text PRIMARY KEY,
	parent_id   text,
	status      text NOT NULL,
	instance_id text
)`

func newHostDB(t *testing.T) *hostDB {
	t.Helper()
	db := pgtest.Open(t)
	if _, err := db.Pool.Exec(t.Context(), hostSchema); err != nil {
		t.Fatalf("create host table: %v", err)
	}
	st, err := store.NewPgx(db.Pool, table)
	if err != nil {
		t.Fatalf("store.NewPgx: %v", err)
	}
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return &hostDB{db: db, st: st}
}

// put writes the row id as the host would, replacing any row with that id.
func (h *hostDB) put(t *testing.T, id, status, instanceID string) {
	t.Helper()
	var inst any
	if instanceID != "" {
		inst = instanceID
	}
	_, err := h.db.Pool.Exec(t.Context(), `INSERT INTO workspaces (id, status, instance_id) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, instance_id = EXCLUDED.instance_id`, id, status, inst)
	if err != nil {
		t.Fatalf("put %s: %v", id, err)
	}
}

// instanceOf returns the instance id row id holds ("" for NULL).
func (h *hostDB) instanceOf(t *testing.T, id string) string {
	t.Helper()
	var inst *string
	if err := h.db.Pool.QueryRow(t.Context(), `SELECT instance_id FROM workspaces WHERE id = $1`, id).Scan(&inst); err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	if inst == nil {
		return ""
	}
	return *inst
}
