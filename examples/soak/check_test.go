package soak

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// drainQuiet is how long the drain must go without reaping or terminating
// anything before it ends: longer than MinAge plus ConfirmPasses passes,
// so that the drain's own sweeper has confirmed, and tried, every row-gone
// instance (a protected one included).
const drainQuiet = 2500 * time.Millisecond

// drainReport is what the drain did.
type drainReport struct {
	passes, reaped, rowGoneTerminated int
	took                              time.Duration
	drained                           bool // it went quiet before its bound
}

// drain runs sweeper passes, with every fault off, until they have been
// quiet (no error, no abort, nothing reaped, nothing terminated) for
// drainQuiet and no instance is left to them: every live instance that is
// not protected is held by a live row. A row still waiting out a backoff
// keeps the drain going. It gives up after 500 passes or a minute.
func (w *world) drain(ctx context.Context) drainReport {
	w.t.Helper()
	st, err := store.NewPgx(w.db.Pool, workspaces.Table, storeOptions()...)
	if err != nil {
		w.t.Fatal(err)
	}
	sink, err := events.NewPostgres(w.db.Pool)
	if err != nil {
		w.t.Fatal(err)
	}
	ec2c := w.stopper(w.ec2Client())
	sw, err := sweeper.New(st, ec2c, w.sweeperOptions(ec2c, sink)...)
	if err != nil {
		w.t.Fatal(err)
	}
	var r drainReport
	start := time.Now()
	quietSince := start
	for r.passes < 500 && time.Since(start) < time.Minute {
		rep, err := sw.SweepOnce(ctx)
		r.passes++
		r.reaped += rep.Reaped
		r.rowGoneTerminated += rep.RowGoneTerminated
		if err != nil || rep.Aborted != "" || rep.Reaped > 0 || rep.RowGoneTerminated > 0 {
			quietSince = time.Now()
		} else if time.Since(quietSince) >= drainQuiet && w.unexplained(ctx) == 0 {
			r.drained = true
			break
		}
		if !sleep(ctx, 50*time.Millisecond) {
			break
		}
	}
	r.took = time.Since(start)
	return r
}

// unexplained counts the live instances, not protected, that no live row
// holds: what the sweepers still have to stop.
func (w *world) unexplained(ctx context.Context) int {
	w.t.Helper()
	rows, err := w.db.Pool.Query(ctx, `SELECT instance_id FROM workspaces WHERE status <> 'removed' AND coalesce(instance_id, '') <> ''`)
	if err != nil {
		w.t.Fatal(err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.t.Fatal(err)
	}
	live := make(map[string]bool, len(held))
	for _, id := range held {
		live[id] = true
	}
	n := 0
	for _, in := range w.fake.Instances() {
		if isLive(in) && !in.Protected && !live[in.ID] {
			n++
		}
	}
	return n
}

// state is everything the checks read, after the drain.
type state struct {
	instances map[string]ec2fake.Instance
	rows      map[string]workspaces.Workspace
	removedAt map[string]time.Time // row id → when it was marked removed
	events    []events.Event
	// terminatedAt is, per instance, the arrival of the first
	// TerminateInstances call that succeeded while naming it.
	terminatedAt map[string]time.Time
}

func (w *world) read(ctx context.Context) state {
	w.t.Helper()
	s := state{
		instances:    make(map[string]ec2fake.Instance),
		rows:         make(map[string]workspaces.Workspace),
		removedAt:    make(map[string]time.Time),
		terminatedAt: make(map[string]time.Time),
	}
	for _, in := range w.fake.Instances() {
		s.instances[in.ID] = in
	}
	for _, r := range w.fake.Requests() {
		if r.Action != "TerminateInstances" || r.Status != 200 {
			continue
		}
		for _, id := range r.InstanceIDs {
			if at, ok := s.terminatedAt[id]; !ok || r.At.Before(at) {
				s.terminatedAt[id] = r.At
			}
		}
	}
	rows, err := w.db.Pool.Query(ctx, `SELECT id, coalesce(parent_id, ''), status, coalesce(instance_id, '') FROM workspaces`)
	if err != nil {
		w.t.Fatal(err)
	}
	for rows.Next() {
		var ws workspaces.Workspace
		if err := rows.Scan(&ws.ID, &ws.ParentID, &ws.Status, &ws.InstanceID); err != nil {
			w.t.Fatal(err)
		}
		s.rows[ws.ID] = ws
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	rows, err = w.db.Pool.Query(ctx, `SELECT id, at FROM soak_removed`)
	if err != nil {
		w.t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			w.t.Fatal(err)
		}
		s.removedAt[id] = at
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	sink, err := events.NewPostgres(w.db.Pool)
	if err != nil {
		w.t.Fatal(err)
	}
	if s.events, err = sink.List(ctx, events.Filter{}); err != nil {
		w.t.Fatal(err)
	}
	return s
}

// isLive reports whether the instance is neither terminated nor on its way.
func isLive(in ec2fake.Instance) bool {
	return in.State != ec2fake.Terminated && in.State != ec2fake.ShuttingDown
}

// verdict is what the checks found: every list must be empty.
type verdict struct {
	// leaked: owned instances still live that no live row holds, and that
	// are not termination-protected.
	leaked []string
	// unrecorded: protected instances left live without a live row and
	// without a sweeper.reap_failed event naming them.
	unrecorded []string
	// liveTerminated: instances terminated before their row was marked
	// removed (or whose row never was).
	liveTerminated []string
	// ledger: instances whose durable teardown.retry_exhausted events do
	// not number exactly the API's give-ups on them.
	ledger []string

	// Figures of the end state.
	liveInstances, liveHeld, protectedLeft, rowGoneTerminated int
	rows, liveRows, orphanedRows, removedHolding              int
	gaveUp, durableExhausted                                  int
	byType                                                    map[string]int
}

func (w *world) check(s state) verdict {
	v := verdict{byType: make(map[string]int)}

	reapFailed := make(map[string]bool) // instance ids named by a reap_failed event
	durable := make(map[string]int)     // retry_exhausted events by subject
	for _, e := range s.events {
		v.byType[e.Type]++
		switch e.Type {
		case events.TypeReapFailed:
			if id, ok := e.Payload["instance_id"].(string); ok {
				reapFailed[id] = true
			}
		case events.TypeRetryExhausted:
			durable[e.Subject]++
			v.durableExhausted++
		case events.TypeRowGoneTerminated:
			v.rowGoneTerminated++
		}
	}

	// Nothing leaks.
	for _, id := range sortedKeys(s.instances) {
		in := s.instances[id]
		if !isLive(in) {
			continue
		}
		v.liveInstances++
		row, ok := s.rows[in.Tags[resourceTag]]
		switch {
		case ok && row.Status != workspaces.StatusRemoved && row.InstanceID == id:
			v.liveHeld++
		case in.Protected:
			v.protectedLeft++
			if !reapFailed[id] {
				v.unrecorded = append(v.unrecorded, fmt.Sprintf("%s (row %q)", id, in.Tags[resourceTag]))
			}
		default:
			v.leaked = append(v.leaked, fmt.Sprintf("%s: state %s, row %q %+v (row exists: %v)", id, in.State, in.Tags[resourceTag], row, ok))
		}
	}

	// Nothing live is terminated.
	for _, id := range sortedKeys(s.terminatedAt) {
		at := s.terminatedAt[id]
		rid := s.instances[id].Tags[resourceTag]
		if _, ok := s.rows[rid]; !ok {
			continue // a row-gone instance: no row was ever live
		}
		removed, ok := s.removedAt[rid]
		if !ok || at.Before(removed) {
			v.liveTerminated = append(v.liveTerminated, fmt.Sprintf("%s: terminated at %s, row %s removed at %s (removed: %v)",
				id, at.Format(time.RFC3339Nano), rid, removed.Format(time.RFC3339Nano), ok))
		}
	}

	// Nothing recorded is lost: one durable event per give-up.
	gaveUp := w.apiStats.gaveUp.snapshot()
	emitted := w.sinks.exhausted.snapshot()
	subjects := make(map[string]bool)
	for id, n := range gaveUp {
		subjects[id] = true
		v.gaveUp += n
	}
	for id := range durable {
		subjects[id] = true
	}
	for _, id := range sortedKeys(subjects) {
		if gaveUp[id] != durable[id] {
			v.ledger = append(v.ledger, fmt.Sprintf("%s: %d give-ups, %d events handed to the sink, %d durable", id, gaveUp[id], emitted[id], durable[id]))
		}
	}

	v.rows = len(s.rows)
	for _, row := range s.rows {
		switch {
		case row.Status != workspaces.StatusRemoved:
			v.liveRows++
			if p, ok := s.rows[row.ParentID]; ok && p.Status == workspaces.StatusRemoved {
				v.orphanedRows++
			}
		case row.InstanceID != "":
			v.removedHolding++
		}
	}
	return v
}

// TestCheckFindsEachViolation shows that every check of the soak can fail:
// one end state holding one violation of each kind, beside instances that
// break nothing.
func TestCheckFindsEachViolation(t *testing.T) {
	at := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tagged := func(row string) map[string]string { return map[string]string{resourceTag: row} }
	s := state{
		instances: map[string]ec2fake.Instance{
			"i-held":     {ID: "i-held", State: ec2fake.Running, Tags: tagged("live")},
			"i-leaked":   {ID: "i-leaked", State: ec2fake.Running, Tags: tagged("removed")},
			"i-recorded": {ID: "i-recorded", State: ec2fake.Running, Tags: tagged("protected-a"), Protected: true},
			"i-silent":   {ID: "i-silent", State: ec2fake.Running, Tags: tagged("protected-b"), Protected: true},
			"i-reaped":   {ID: "i-reaped", State: ec2fake.Terminated, Tags: tagged("reaped")},
			"i-early":    {ID: "i-early", State: ec2fake.Terminated, Tags: tagged("early")},
			"i-alive":    {ID: "i-alive", State: ec2fake.Terminated, Tags: tagged("alive")},
			"i-rowgone":  {ID: "i-rowgone", State: ec2fake.Terminated, Tags: tagged("never-a-row")},
		},
		rows: map[string]workspaces.Workspace{
			"live":        {ID: "live", Status: workspaces.StatusRunning, InstanceID: "i-held"},
			"removed":     {ID: "removed", Status: workspaces.StatusRemoved, InstanceID: "i-leaked"},
			"protected-a": {ID: "protected-a", Status: workspaces.StatusRemoved, InstanceID: "i-recorded"},
			"protected-b": {ID: "protected-b", Status: workspaces.StatusRemoved, InstanceID: "i-silent"},
			"reaped":      {ID: "reaped", Status: workspaces.StatusRemoved},
			"early":       {ID: "early", Status: workspaces.StatusRemoved},
			"alive":       {ID: "alive", Status: workspaces.StatusRunning, InstanceID: "i-alive"},
		},
		removedAt: map[string]time.Time{
			"removed": at, "protected-a": at, "protected-b": at, "reaped": at, "early": at,
		},
		terminatedAt: map[string]time.Time{
			"i-reaped":  at.Add(time.Millisecond),
			"i-early":   at.Add(-time.Millisecond),
			"i-alive":   at,
			"i-rowgone": at,
		},
		events: []events.Event{
			{Type: events.TypeReapFailed, Subject: "protected-a", Payload: map[string]any{"instance_id": "i-recorded"}},
			{Type: events.TypeRetryExhausted, Subject: "i-once"},
			{Type: events.TypeRetryExhausted, Subject: "i-twice"},
			{Type: events.TypeRetryExhausted, Subject: "i-unasked"},
		},
	}
	w := &world{}
	w.apiStats.gaveUp.add("i-once", 1)
	w.apiStats.gaveUp.add("i-twice", 2)
	w.apiStats.gaveUp.add("i-lost", 1)

	v := w.check(s)
	for _, c := range []struct {
		name  string
		found []string
		want  []string
	}{
		{"leaked", v.leaked, []string{"i-leaked"}},
		{"unrecorded", v.unrecorded, []string{"i-silent"}},
		{"liveTerminated", v.liveTerminated, []string{"i-alive", "i-early"}},
		{"ledger", v.ledger, []string{"i-lost", "i-twice", "i-unasked"}},
	} {
		var ids []string
		for _, f := range c.found {
			ids = append(ids, strings.SplitN(f, ":", 2)[0])
			ids[len(ids)-1] = strings.Fields(ids[len(ids)-1])[0]
		}
		if !slices.Equal(ids, c.want) {
			t.Errorf("%s: found %q, want %q", c.name, c.found, c.want)
		}
	}
	if v.liveInstances != 4 || v.liveHeld != 1 || v.protectedLeft != 2 {
		t.Errorf("live %d, held %d, protected %d; want 4, 1, 2", v.liveInstances, v.liveHeld, v.protectedLeft)
	}
}
