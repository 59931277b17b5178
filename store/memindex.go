package store

import (
	"container/heap"
	"strings"
	"time"
)

// memIndex keeps a Memory store's pending rows in due order, so Pending
// costs O(limit · log n) instead of a sort of every row on every call: a
// drain of n rows is O(n log n). Every change to a row pushes a fresh entry
// for it and makes its older entries stale (a version per row); stale
// entries are dropped when they reach the top, and the heaps are rebuilt
// when stale ones outnumber the rows.
type memIndex struct {
	version map[string]uint64
	due     dueHeap     // rows due now, in Pending's order
	waiting waitingHeap // rows hidden until their due time, soonest first
}

// memEntry is one row's place in the index, as of one version of it.
type memEntry struct {
	id       string
	version  uint64
	tried    bool      // a failed attempt is recorded for its instance
	recorded bool      // it has a record at all (a grace, or a failure)
	next     time.Time // when it is due; zero without a record
}

// before is Pending's order: never-attempted rows first (those with a
// record, whose grace is over, before those without), then attempted
// ones; within each, the one due longest first, then by id.
func (e memEntry) before(o memEntry) bool {
	if e.tried != o.tried {
		return !e.tried
	}
	if e.recorded != o.recorded {
		return e.recorded
	}
	if c := e.next.Compare(o.next); c != 0 {
		return c < 0
	}
	return strings.Compare(e.id, o.id) < 0
}

func newMemIndex() memIndex { return memIndex{version: map[string]uint64{}} }

// indexLocked indexes the row with id as it is now, after a change to
// it. Called with m.st.mu held.
func (m *Memory) indexLocked(id string, now time.Time) {
	x := &m.st.index
	x.version[id]++
	if e, ok := m.entryLocked(id); ok {
		if e.next.After(now) {
			heap.Push(&x.waiting, e)
		} else {
			heap.Push(&x.due, e)
		}
	}
	if x.due.Len()+x.waiting.Len() > 2*len(m.st.rows)+1024 {
		m.reindexLocked(now)
	}
}

// reindexLocked rebuilds the index from the rows, dropping every stale
// entry.
func (m *Memory) reindexLocked(now time.Time) {
	x := &m.st.index
	x.due, x.waiting = x.due[:0], x.waiting[:0]
	for id := range m.st.rows {
		if e, ok := m.entryLocked(id); ok {
			if e.next.After(now) {
				x.waiting = append(x.waiting, e)
			} else {
				x.due = append(x.due, e)
			}
		}
	}
	heap.Init(&x.due)
	heap.Init(&x.waiting)
}

// entryLocked is the row's entry at its current version, and false when
// the row is not pending.
func (m *Memory) entryLocked(id string) (memEntry, bool) {
	r, ok := m.st.rows[id]
	if !ok || r.Status != m.removed || r.InstanceID == "" {
		return memEntry{}, false
	}
	a, recorded := m.attemptLocked(r)
	return memEntry{id: id, version: m.st.index.version[id], tried: a.count > 0, recorded: recorded, next: a.next}, true
}

// current reports whether e describes its row as it is now.
func (x *memIndex) current(e memEntry) bool { return x.version[e.id] == e.version }

// firstLocked returns up to limit due rows' ids in Pending's order, of
// the rows that match, leaving them indexed. Rows that do not match (a
// view's other locations) are read past.
func (m *Memory) firstLocked(limit int, now time.Time, match func(id string) bool) []string {
	x := &m.st.index
	for x.waiting.Len() > 0 && !x.waiting[0].next.After(now) {
		if e := heap.Pop(&x.waiting).(memEntry); x.current(e) {
			heap.Push(&x.due, e)
		}
	}
	var taken, passed []memEntry
	for len(taken) < limit && x.due.Len() > 0 {
		e := heap.Pop(&x.due).(memEntry)
		switch {
		case !x.current(e):
		case match(e.id):
			taken = append(taken, e)
		default:
			passed = append(passed, e)
		}
	}
	ids := make([]string, len(taken))
	for i, e := range taken {
		ids[i] = e.id
		heap.Push(&x.due, e)
	}
	for _, e := range passed {
		heap.Push(&x.due, e)
	}
	return ids
}

type dueHeap []memEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].before(h[j]) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(memEntry)) }
func (h *dueHeap) Pop() any          { return pop((*[]memEntry)(h)) }

type waitingHeap []memEntry

func (h waitingHeap) Len() int           { return len(h) }
func (h waitingHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h waitingHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitingHeap) Push(x any)        { *h = append(*h, x.(memEntry)) }
func (h *waitingHeap) Pop() any          { return pop((*[]memEntry)(h)) }

func pop(s *[]memEntry) memEntry {
	old := *s
	e := old[len(old)-1]
	*s = old[:len(old)-1]
	return e
}
