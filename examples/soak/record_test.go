package soak

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"sync"

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
	removed bool            // RemoveTree succeeded
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
	if err == nil || errors.Is(err, teardown.ErrGone) {
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
	}
	return ids
}

// recordingStore is the API's store, noting what RemoveTree returned.
type recordingStore struct{ store.Store }

func (s recordingStore) RemoveTree(ctx context.Context, rootID string) ([]store.Pending, error) {
	held, err := s.Store.RemoveTree(ctx, rootID)
	if c := callOf(ctx); c != nil && err == nil {
		c.mu.Lock()
		c.removed = true
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
	calls   tally // "METHOD route status" → answers
	gaveUp  tally // instance id → give-ups
	removes tally // "removed" → DELETEs whose RemoveTree succeeded
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
		if c.removed {
			a.removes.add("removed", 1)
		}
	})
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
}

func (s countingSink) Emit(ctx context.Context, e events.Event) error {
	err := s.next.Emit(ctx, e)
	s.stats.emitted.add(e.Type, 1)
	if e.Type == events.TypeRetryExhausted {
		s.stats.exhausted.add(e.Subject, 1)
	}
	if err != nil {
		s.stats.failed.add(e.Type, 1)
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
