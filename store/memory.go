package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/leakless/leakless/teardown"
)

// Row is one row of a [Memory] store's table: the host's columns that
// leakless reads. An empty Parent or InstanceID means none.
type Row struct {
	ID         string
	Parent     string
	Status     string
	InstanceID string
	Location   string // where its instance lives, for [Memory.In]; "" is the default location
}

// Memory is an in-memory Store with the same semantics as [Postgres], for
// examples and the host's own unit tests. Its table is edited with Put and
// Delete, as the host's code would edit the real one. Time is read from
// the time package, so tests in a testing/synctest bubble control it. It is
// safe for concurrent use.
type Memory struct {
	removed   string
	hasParent bool
	grace     time.Duration
	err       error // a bad Option, returned by every method

	st *memState // shared by the store and its views (see In)

	scoped   bool   // the store is a view of one location
	location string // that location
}

// memState is a Memory store's table and attempt state.
type memState struct {
	mu       sync.Mutex
	rows     map[string]Row
	attempts map[string]attempt // by row id
	index    memIndex           // the pending rows, in due order
}

// attempt is a row's failure record, as leakless_attempts holds it.
type attempt struct {
	instanceID string
	count      int
	lastError  string
	last, next time.Time
	notFound   time.Time // since when every attempt has answered teardown.ErrNotFound; zero if the last did not

	first        time.Time // when the record for this instance was first written
	permanent    bool      // the latest failure was permanent
	acknowledged time.Time // when Forget acknowledged it; zero if it did not
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store. Of t it uses Removed (compared
// verbatim with each Row's Status) and whether Parent is set (without it,
// every tree is its root alone); column names are not checked. Of the
// options it uses [WithRedriveGrace]. A bad option makes every method
// return an error wrapping ErrConfig, as NewPgx would have.
func NewMemory(t Table, opts ...Option) *Memory {
	cfg, err := newConfig(opts)
	return &Memory{
		removed:   t.Removed,
		hasParent: t.Parent != "",
		grace:     cfg.grace,
		err:       err,
		st: &memState{
			rows:     map[string]Row{},
			attempts: map[string]attempt{},
			index:    newMemIndex(),
		},
	}
}

// In returns a view of the store scoped to one location: its Pending
// returns only rows whose Location is location; everything else, the
// table included, is the store's own, as [Postgres.In] describes. Unlike
// Postgres.In it needs no Table.Location.
func (m *Memory) In(location string) *Memory {
	v := *m
	v.scoped, v.location = true, location
	return &v
}

// check is the error a method returns before doing anything: a bad
// option, or ctx done.
func (m *Memory) check(ctx context.Context) error {
	if m.err != nil {
		return m.err
	}
	return ctx.Err()
}

// Put inserts r, or replaces the row with r's ID.
func (m *Memory) Put(r Row) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	m.st.rows[r.ID] = r
	m.indexLocked(r.ID, time.Now())
}

// Get returns the row with the given id and whether it exists.
func (m *Memory) Get(id string) (Row, bool) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	r, ok := m.st.rows[id]
	return r, ok
}

// Delete removes the row with the given id outright, as a host that hard
// deletes would (its attempt state stays, as in Postgres, and is ignored).
func (m *Memory) Delete(id string) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	delete(m.st.rows, id)
	m.indexLocked(id, time.Now())
}

// Pending returns up to limit removed rows still holding an instance that
// are due. See [Store].
func (m *Memory) Pending(ctx context.Context, limit int) ([]Pending, error) {
	if err := m.check(ctx); err != nil {
		return nil, fmt.Errorf("store: pending: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	ids := m.firstLocked(limit, time.Now(), func(id string) bool {
		return !m.scoped || m.st.rows[id].Location == m.location
	})
	out := make([]Pending, len(ids))
	for i, id := range ids {
		out[i] = m.pendingLocked(m.st.rows[id])
	}
	return out, nil
}

// Reaped clears the row's instance id if it still holds p.InstanceID and
// is still removed. See [Store].
func (m *Memory) Reaped(ctx context.Context, p Pending) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, fmt.Errorf("store: reaped %q: %w", p.ResourceID, err)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	r, ok := m.st.rows[p.ResourceID]
	if !ok || r.Status != m.removed || r.InstanceID == "" || r.InstanceID != p.InstanceID {
		return false, nil
	}
	r.InstanceID = ""
	m.st.rows[r.ID] = r
	delete(m.st.attempts, r.ID)
	m.indexLocked(r.ID, time.Now())
	return true, nil
}

// ReapedAll is Reaped for every row of ps. See [BatchStore].
func (m *Memory) ReapedAll(ctx context.Context, ps []Pending) ([]bool, error) {
	if err := m.check(ctx); err != nil {
		return nil, fmt.Errorf("store: reaped %d rows: %w", len(ps), err)
	}
	cleared := make([]bool, len(ps))
	for i, p := range ps {
		ok, err := m.Reaped(ctx, p)
		if err != nil {
			return nil, err // only a bad option or ctx, before any write
		}
		cleared[i] = ok
	}
	return cleared, nil
}

// FailedAll is Failed for every entry of fs. See [BatchStore].
func (m *Memory) FailedAll(ctx context.Context, fs []Failure) error {
	if err := m.check(ctx); err != nil {
		return fmt.Errorf("store: failed %d rows: %w", len(fs), err)
	}
	for _, f := range distinctFailures(fs) {
		if err := m.Failed(ctx, f.Pending, f.Err, f.Delay); err != nil {
			return err
		}
	}
	return nil
}

// Failed records a failed attempt and hides the row for delay. See
// [Store].
func (m *Memory) Failed(ctx context.Context, p Pending, cause error, delay time.Duration) error {
	if err := m.check(ctx); err != nil {
		return fmt.Errorf("store: failed %q: %w", p.ResourceID, err)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	if _, ok := m.st.rows[p.ResourceID]; !ok {
		return nil
	}
	now := time.Now()
	a := m.st.attempts[p.ResourceID]
	if a.instanceID != p.InstanceID {
		a = attempt{instanceID: p.InstanceID, first: now}
	}
	a.count++
	a.lastError = lastError(cause)
	a.last = now
	if a.acknowledged.IsZero() {
		a.next = now.Add(max(delay, 0))
	}
	a.permanent = isPermanent(cause)
	switch {
	case !errors.Is(cause, teardown.ErrNotFound):
		a.notFound = time.Time{}
	case a.notFound.IsZero():
		a.notFound = now
	}
	m.st.attempts[p.ResourceID] = a
	m.indexLocked(p.ResourceID, now)
	return nil
}

// RemoveTree marks rootID and its descendants removed and returns every
// holder in the tree. See [Store].
func (m *Memory) RemoveTree(ctx context.Context, rootID string) ([]Pending, error) {
	if err := m.check(ctx); err != nil {
		return nil, fmt.Errorf("store: remove tree %q: %w", rootID, err)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	if _, ok := m.st.rows[rootID]; !ok {
		return nil, fmt.Errorf("store: remove tree %q: %w", rootID, ErrNotFound)
	}
	children := map[string][]string{}
	if m.hasParent {
		for _, r := range m.st.rows {
			if r.Parent != "" {
				children[r.Parent] = append(children[r.Parent], r.ID)
			}
		}
	}
	var out []Pending
	now := time.Now()
	seen := map[string]bool{rootID: true} // ends a cycle in parent ids
	for queue := []string{rootID}; len(queue) > 0; queue = queue[1:] {
		r := m.st.rows[queue[0]]
		if r.InstanceID != "" {
			out = append(out, m.pendingLocked(r))
			m.deferLocked(r, now)
		}
		r.Status = m.removed
		m.st.rows[r.ID] = r
		m.indexLocked(r.ID, now)
		for _, c := range children[r.ID] {
			if !seen[c] {
				seen[c] = true
				queue = append(queue, c)
			}
		}
	}
	sortPending(out)
	return out, nil
}

// Stopping tells the store that the caller is stopping the instances of
// ps itself: each row still holding p.InstanceID is hidden from Pending
// for the redrive grace. See [Postgres.Stopping].
func (m *Memory) Stopping(ctx context.Context, ps ...Pending) error {
	if err := m.check(ctx); err != nil {
		return fmt.Errorf("store: stopping: %w", err)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	if m.grace <= 0 {
		return nil
	}
	now := time.Now()
	for _, p := range ps {
		if r, ok := m.st.rows[p.ResourceID]; ok && r.InstanceID != "" && r.InstanceID == p.InstanceID {
			m.deferLocked(r, now)
			m.indexLocked(r.ID, now)
		}
	}
	return nil
}

// Known reports which instance ids some row holds, which resource ids are
// still provisioning and which are removed, and the time of the read. See
// [Store].
func (m *Memory) Known(ctx context.Context, resourceIDs, instanceIDs []string) (Known, error) {
	if err := m.check(ctx); err != nil {
		return Known{}, fmt.Errorf("store: known: %w", err)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	k := Known{Held: map[string]bool{}, Provisioning: map[string]bool{}, Removed: map[string]bool{}, Stopping: map[string]bool{}, Now: time.Now()}
	held := map[string]bool{}
	for _, id := range instanceIDs {
		held[id] = true
	}
	provisioning := map[string][]string{} // lower-cased → as asked
	for _, id := range resourceIDs {
		provisioning[strings.ToLower(id)] = append(provisioning[strings.ToLower(id)], id)
	}
	for _, r := range m.st.rows {
		if r.InstanceID != "" && held[r.InstanceID] {
			k.Held[r.InstanceID] = true
		}
		into := k.Provisioning
		switch {
		case r.Status == m.removed:
			into = k.Removed
		case r.InstanceID != "":
			continue
		}
		for _, id := range provisioning[strings.ToLower(r.ID)] {
			into[id] = true
			if a, ok := m.attemptLocked(r); r.Status == m.removed && r.InstanceID != "" && !(ok && a.permanent) {
				k.Stopping[id] = true
			}
		}
	}
	return k, nil
}

// attemptLocked returns r's attempt state for the instance it holds now:
// state recorded for another instance does not count.
func (m *Memory) attemptLocked(r Row) (attempt, bool) {
	a, ok := m.st.attempts[r.ID]
	if !ok || a.instanceID != r.InstanceID {
		return attempt{}, false
	}
	return a, true
}

// deferLocked hides r from Pending until the grace from now has passed,
// or its own later due time, keeping its attempt state; a record for
// another instance starts over.
func (m *Memory) deferLocked(r Row, now time.Time) {
	a, ok := m.attemptLocked(r)
	if !ok {
		a = attempt{instanceID: r.InstanceID, first: now}
	}
	if due := now.Add(m.grace); due.After(a.next) {
		a.next = due
	}
	m.st.attempts[r.ID] = a
}

func (m *Memory) pendingLocked(r Row) Pending {
	a, _ := m.attemptLocked(r)
	p := Pending{ResourceID: r.ID, InstanceID: r.InstanceID, Attempts: a.count, LastError: a.lastError}
	if !a.notFound.IsZero() {
		p.NotFoundFor = max(time.Since(a.notFound), time.Nanosecond)
	}
	return p
}
