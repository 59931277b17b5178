package soak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// The API's give-ups are counted from what the handler did, not from what
// it said: each request carries a call record in its context, which the
// store and stopper wrappers below fill in (the handler's detached contexts
// keep the request's values). A DELETE gave up on every instance its
// RemoveTree returned that no stop call reported stopped or gone; a create
// gave up on every instance it tried to stop (its unwind after a launch it
// could not record) and never stopped. That is exactly when
// teardown.StopAll and StopWithRetry give up and call WithOnExhausted.

type callKey struct{}

// call is what one API request did.
type call struct {
	mu      sync.Mutex
	held    []string        // instance ids RemoveTree returned
	tried   map[string]bool // instance ids a stop call named
	stopped map[string]bool // instance ids a stop call reported stopped or gone
}

func callOf(ctx context.Context) *call {
	c, _ := ctx.Value(callKey{}).(*call)
	return c
}

func (c *call) stop(id string, err error) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tried == nil {
		c.tried, c.stopped = make(map[string]bool), make(map[string]bool)
	}
	c.tried[id] = true
	// A pending stop (accepted, its dependents not finished) is no
	// give-up: the loop returns it without calling WithOnExhausted, and
	// the row keeps its instance for the sweepers.
	if err == nil || errors.Is(err, teardown.ErrGone) || teardown.IsPending(err) {
		c.stopped[id] = true
	}
}

// gaveUp returns the instances the request gave up on.
func (c *call) gaveUp(method string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	switch method {
	case http.MethodDelete:
		seen := make(map[string]bool)
		for _, id := range c.held {
			if !seen[id] && !c.stopped[id] {
				ids = append(ids, id)
			}
			seen[id] = true
		}
	case http.MethodPost:
		for id := range c.tried {
			if !c.stopped[id] {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
	}
	return ids
}

// recordingStore is the API's store, noting what RemoveTree returned.
type recordingStore struct{ store.Store }

func (s recordingStore) RemoveTree(ctx context.Context, rootID string) ([]store.Pending, error) {
	held, err := s.Store.RemoveTree(ctx, rootID)
	if c := callOf(ctx); c != nil && err == nil {
		c.mu.Lock()
		for _, p := range held {
			c.held = append(c.held, p.InstanceID)
		}
		c.mu.Unlock()
	}
	return held, err
}

// batchStopper is what the API and the sweepers stop with: an
// *awsec2.Client.
type batchStopper interface {
	teardown.BatchStopper
	teardown.Inventory
}

// recordingStopper is the API's stopper, noting each result. It is a
// BatchStopper, so the API still sends batches.
type recordingStopper struct{ next batchStopper }

func (s recordingStopper) Stop(ctx context.Context, id string) error {
	err := s.next.Stop(ctx, id)
	callOf(ctx).stop(id, err)
	return err
}

func (s recordingStopper) StopBatch(ctx context.Context, ids []string) map[string]error {
	res := s.next.StopBatch(ctx, ids)
	c := callOf(ctx)
	for id, err := range res {
		c.stop(id, err)
	}
	return res
}

// tally is a set of counters safe for concurrent use.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (t *tally) add(key string, n int) {
	t.mu.Lock()
	if t.n == nil {
		t.n = make(map[string]int)
	}
	t.n[key] += n
	t.mu.Unlock()
}

func (t *tally) snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.n))
	for k, v := range t.n {
		out[k] = v
	}
	return out
}

// apiStats counts the API's answers and its give-ups, over both replicas.
type apiStats struct {
	calls  tally // "METHOD route status" → answers
	gaveUp tally // instance id → give-ups

	// stillHeld lists the rows of the tree under root that are removed
	// and still hold an instance.
	stillHeld func(ctx context.Context, root string) []string
	mu        sync.Mutex
	held204   []string // DELETEs answered 204 whose tree still held an instance
}

// wrap puts a call record in each request's context and tallies the
// answer once the handler has returned.
func (a *apiStats) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
		route := "/workspaces/{id}"
		if r.URL.Path == "/workspaces" {
			route = "/workspaces"
		}
		a.calls.add(r.Method+" "+route+" "+strconv.Itoa(sw.status), 1)
		for _, id := range c.gaveUp(r.Method) {
			a.gaveUp.add(id, 1)
		}
		// A 204 promises that nothing in the tree is held any more. Only
		// a stop clears a removed row, and a removed row never takes an
		// instance again, so a removed holder seen now was never stopped.
		if r.Method == http.MethodDelete && sw.status == http.StatusNoContent {
			root := strings.TrimPrefix(r.URL.Path, "/workspaces/")
			if held := a.stillHeld(context.WithoutCancel(r.Context()), root); len(held) > 0 {
				a.mu.Lock()
				a.held204 = append(a.held204, fmt.Sprintf("DELETE %s answered 204; still held: %s", root, strings.Join(held, ", ")))
				a.mu.Unlock()
			}
		}
	})
}

func (a *apiStats) heldAfter204() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.held204...)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// countingSink counts the events handed to a sink, and those it failed to
// write, by type; for give-up events also by subject.
type countingSink struct {
	next  events.Sink
	stats *sinkStats
}

type sinkStats struct {
	emitted, failed tally // by type
	exhausted       tally // TypeRetryExhausted emits, by subject
	errors          tally // failed writes, by type and error
}

func (s countingSink) Emit(ctx context.Context, e events.Event) error {
	err := s.next.Emit(ctx, e)
	s.stats.emitted.add(e.Type, 1)
	if e.Type == events.TypeRetryExhausted {
		s.stats.exhausted.add(exhaustedInstance(e), 1)
	}
	if err != nil {
		s.stats.failed.add(e.Type, 1)
		s.stats.errors.add(e.Type+": "+err.Error(), 1)
	}
	return err
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestCallGaveUp pins down what counts as a give-up: a DELETE's held
// instance (each once) that no stop call reported stopped or gone, and an
// instance a create tried to stop and never did.
func TestCallGaveUp(t *testing.T) {
	del := &call{held: []string{"i-a", "i-b", "i-a", "i-c", "i-d"}}
	del.stop("i-b", nil)
	del.stop("i-c", fmt.Errorf("terminate: %w", teardown.ErrGone))
	del.stop("i-a", errors.New("throttled"))
	if got, want := del.gaveUp(http.MethodDelete), []string{"i-a", "i-d"}; !slices.Equal(got, want) {
		t.Errorf("DELETE gave up on %q, want %q", got, want)
	}

	create := &call{}
	create.stop("i-x", errors.New("throttled"))
	create.stop("i-y", errors.New("throttled"))
	create.stop("i-y", nil)
	if got, want := create.gaveUp(http.MethodPost), []string{"i-x"}; !slices.Equal(got, want) {
		t.Errorf("create gave up on %q, want %q", got, want)
	}
	if got := (&call{}).gaveUp(http.MethodPost); len(got) != 0 {
		t.Errorf("a create that stopped nothing gave up on %q, want none", got)
	}
}
