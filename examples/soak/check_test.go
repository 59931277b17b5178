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
// drainQuiet and nothing is left to them: every live instance that is not
// protected is held by a live row, and no dependent is left (see
// dependentsLeft). A row still waiting out a backoff keeps the drain
// going. It gives up after 500 passes or drainBound.
// drainBound bounds the drain. A removed row whose instance owns
// dependents takes two stops (the second once the termination has freed
// them), and under the race detector, with the rest of the suite running
// beside it, the drain of the ~2,500 rows a run leaves takes 40 s to well
// over a minute.
const drainBound = 3 * time.Minute

func (w *world) drain(ctx context.Context) drainReport {
	w.t.Helper()
	st, err := store.NewPgx(w.db.Pool, workspaces.Table, storeOptions()...)
	if err != nil {
		w.t.Fatal(err)
	}
	sink, err := events.NewPgx(w.db.Pool)
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
	for r.passes < 500 && time.Since(start) < drainBound {
		rep, err := sw.SweepOnce(ctx)
		r.passes++
		r.reaped += rep.Reaped
		r.rowGoneTerminated += rep.RowGoneTerminated
		if err != nil || rep.Aborted != "" || rep.Reaped > 0 || rep.RowGoneTerminated > 0 {
			quietSince = time.Now()
		} else if time.Since(quietSince) >= drainQuiet && w.unexplained(ctx) == 0 && w.pendingDependents(ctx) == 0 {
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

// unexplained counts the live instances, neither protected nor missing the
// owner tag, that no live row holds: what the sweepers still have to stop.
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
	untagged := w.chaos.untaggedInstances()
	n := 0
	for _, in := range w.fake.Instances() {
		if isLive(in) && !in.Protected && !untagged[in.ID] && !live[in.ID] {
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
	// cleared is every clear of a row's instance, in no order.
	cleared []clearing
	// untagged are the instances launched without the owner tag.
	untagged map[string]bool
	// refusals are the instance ids of each TerminateInstances call IAM
	// refused; notFound counts the calls answered NotFound.
	refusals [][]string
	notFound int
	// deps is what the fake holds beyond instances.
	deps dependents
}

// clearing is one row losing its instance id, by the database's clock.
type clearing struct {
	row, instance string
	at            time.Time
}

func (w *world) read(ctx context.Context) state {
	w.t.Helper()
	s := state{
		instances:    make(map[string]ec2fake.Instance),
		rows:         make(map[string]workspaces.Workspace),
		removedAt:    make(map[string]time.Time),
		terminatedAt: make(map[string]time.Time),
		untagged:     w.chaos.untaggedInstances(),
	}
	for _, in := range w.fake.Instances() {
		s.instances[in.ID] = in
	}
	s.deps = w.readDependents()
	for _, r := range w.fake.Requests() {
		if r.Action != "TerminateInstances" {
			continue
		}
		switch r.Code {
		case "UnauthorizedOperation":
			s.refusals = append(s.refusals, r.InstanceIDs)
		case "InvalidInstanceID.NotFound":
			s.notFound++
		}
		if r.Status != 200 {
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
	rows, err = w.db.Pool.Query(ctx, `SELECT id, instance_id, at FROM soak_cleared`)
	if err != nil {
		w.t.Fatal(err)
	}
	for rows.Next() {
		var c clearing
		if err := rows.Scan(&c.row, &c.instance, &c.at); err != nil {
			w.t.Fatal(err)
		}
		s.cleared = append(s.cleared, c)
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	sink, err := events.NewPgx(w.db.Pool)
	if err != nil {
		w.t.Fatal(err)
	}
	if s.events, err = sink.List(ctx, events.Filter{}); err != nil {
		w.t.Fatal(err)
	}
	w.lastEvents = s.events
	return s
}

// isLive reports whether the instance is neither terminated nor on its way.
func isLive(in ec2fake.Instance) bool {
	return in.State != ec2fake.Terminated && in.State != ec2fake.ShuttingDown
}

type verdict struct {
	// leaked: owned instances still live that no live row holds, and that
	// are neither termination-protected nor missing the owner tag.
	leaked []string
	// unrecorded: instances we cannot terminate (protected, or without
	// the owner tag) left live without a live row and without the event
	// that puts them on record: a sweeper.reap_failed naming them, and for
	// an untagged one a permanent sweeper.reap_failed or any
	// teardown.retry_exhausted.
	unrecorded []string
	// liveTerminated: instances terminated before their row was marked
	// removed (or whose row never was), unless no row ever held them and
	// their provisioning had timed out.
	liveTerminated []string
	// clearedLive: rows cleared of an instance that no successful
	// TerminateInstances had named yet.
	clearedLive []string
	// stranded: instances named in a call IAM refused, which they did not
	// cause (they carry the owner tag and are not protected), left live.
	stranded []string
	// ledger: instances whose durable teardown.retry_exhausted events do
	// not number exactly the API's give-ups on them.
	ledger []string
	// dependentsLeft: owned volumes, Elastic IPs, interfaces and open or
	// active spot requests whose row is removed or gone, used by no live
	// instance.
	dependentsLeft []string

	// Figures of the end state.
	liveInstances, liveHeld, protectedLeft, untaggedLeft int
	rowGoneTerminated, provisionTimedOut                 int
	rows, liveRows, orphanedRows, removedHolding         int
	gaveUp, durableExhausted                             int
	refusals, refusalsOfSeveral, notFound                int
	ownedVolumes, ownedAddresses                         int
	byType                                               map[string]int
}

func (w *world) check(s state) verdict {
	v := verdict{byType: make(map[string]int), notFound: s.notFound}

	reapFailed := make(map[string]bool) // instance ids named by a reap_failed event
	refused := make(map[string]bool)    // instance ids named by a permanent failure event
	durable := make(map[string]int)     // retry_exhausted events by subject
	for _, e := range s.events {
		v.byType[e.Type]++
		switch e.Type {
		case events.TypeReapFailed:
			if id, ok := e.Payload["instance_id"].(string); ok {
				reapFailed[id] = true
				if e.Payload["permanent"] == true {
					refused[id] = true
				}
			}
		case events.TypeRetryExhausted:
			id := exhaustedInstance(e)
			durable[id]++
			v.durableExhausted++
			// Any give-up puts an untagged instance on record: one whose
			// stop met NotFound first is, once its row lets go of it, owned
			// by nothing a sweeper can list.
			refused[id] = true
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
		case s.untagged[id]:
			v.untaggedLeft++
			if !refused[id] {
				v.unrecorded = append(v.unrecorded, fmt.Sprintf("%s (row %q, no owner tag)", id, in.Tags[resourceTag]))
			}
		case in.Protected:
			v.protectedLeft++
			if !reapFailed[id] {
				v.unrecorded = append(v.unrecorded, fmt.Sprintf("%s (row %q, protected)", id, in.Tags[resourceTag]))
			}
		default:
			v.leaked = append(v.leaked, fmt.Sprintf("%s: state %s, row %q %+v (row exists: %v)", id, in.State, in.Tags[resourceTag], row, ok))
		}
	}

	// IAM refuses a whole call for one untagged instance; the others in it
	// must still be terminated.
	stranded := make(map[string]bool)
	for _, ids := range s.refusals {
		v.refusals++
		if len(ids) > 1 {
			v.refusalsOfSeveral++
		}
		for _, id := range ids {
			in := s.instances[id]
			if isLive(in) && !in.Protected && !s.untagged[id] && !stranded[id] {
				stranded[id] = true
				v.stranded = append(v.stranded, fmt.Sprintf("%s: state %s, refused with %d others", id, in.State, len(ids)-1))
			}
		}
	}
	slices.Sort(v.stranded)

	// Nothing is cleared while its instance runs.
	held := make(map[string]bool) // instances some row held at some time
	for _, row := range s.rows {
		held[row.InstanceID] = true
	}
	for _, c := range s.cleared {
		held[c.instance] = true
		if at, ok := s.terminatedAt[c.instance]; !ok || c.at.Before(at) {
			v.clearedLive = append(v.clearedLive, fmt.Sprintf("%s: cleared from row %s at %s, terminated at %s (terminated: %v)",
				c.instance, c.row, c.at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano), ok))
		}
	}
	slices.Sort(v.clearedLive)

	// Nothing live is terminated.
	for _, id := range sortedKeys(s.terminatedAt) {
		at := s.terminatedAt[id]
		in := s.instances[id]
		rid := in.Tags[resourceTag]
		if _, ok := s.rows[rid]; !ok {
			continue // a row-gone instance: no row was ever live
		}
		removed, ok := s.removedAt[rid]
		if ok && !at.Before(removed) {
			continue
		}
		// A create that died after its launch: its row, still
		// provisioning, protects the instance only until the timeout.
		if !held[id] && !at.Before(in.LaunchTime.Add(provisionTimeout)) {
			v.provisionTimedOut++
			continue
		}
		v.liveTerminated = append(v.liveTerminated, fmt.Sprintf("%s: terminated at %s, row %s removed at %s (removed: %v), launched at %s",
			id, at.Format(time.RFC3339Nano), rid, removed.Format(time.RFC3339Nano), ok, in.LaunchTime.Format(time.RFC3339Nano)))
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

	// Nothing an instance leaves behind outlives its row.
	v.dependentsLeft = dependentsLeft(s.deps, s.rows, s.instances)
	for _, vol := range s.deps.volumes {
		if vol.Tags[resourceTag] != "" {
			v.ownedVolumes++
		}
	}
	for _, a := range s.deps.addresses {
		if a.Tags[resourceTag] != "" {
			v.ownedAddresses++
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

// exhaustedInstance is the instance a give-up event is about: its subject
// is the row, when the stop knew it.
func exhaustedInstance(e events.Event) string {
	if id, ok := e.Payload["instance_id"].(string); ok && id != "" {
		return id
	}
	return e.Subject
}

// TestCheckFindsEachViolation shows that every check of the soak can fail:
// one end state holding one violation of each kind, beside instances that
// break nothing.
func TestCheckFindsEachViolation(t *testing.T) {
	at := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tagged := func(row string) map[string]string { return map[string]string{resourceTag: row} }
	launched := at.Add(-time.Minute)
	s := state{
		instances: map[string]ec2fake.Instance{
			"i-held":      {ID: "i-held", State: ec2fake.Running, Tags: tagged("live")},
			"i-leaked":    {ID: "i-leaked", State: ec2fake.Running, Tags: tagged("removed")},
			"i-recorded":  {ID: "i-recorded", State: ec2fake.Running, Tags: tagged("protected-a"), Protected: true},
			"i-silent":    {ID: "i-silent", State: ec2fake.Running, Tags: ownedTags("protected-b"), Protected: true},
			"i-refused":   {ID: "i-refused", State: ec2fake.Running, Tags: tagged("untagged-a")},
			"i-unowned":   {ID: "i-unowned", State: ec2fake.Running, Tags: tagged("untagged-b")},
			"i-mate":      {ID: "i-mate", State: ec2fake.Terminated, Tags: tagged("mate")},
			"i-stranded":  {ID: "i-stranded", State: ec2fake.Running, Tags: tagged("stranded")},
			"i-reaped":    {ID: "i-reaped", State: ec2fake.Terminated, Tags: tagged("reaped")},
			"i-cleared":   {ID: "i-cleared", State: ec2fake.Terminated, Tags: tagged("cleared")},
			"i-early":     {ID: "i-early", State: ec2fake.Terminated, Tags: tagged("early"), LaunchTime: launched},
			"i-alive":     {ID: "i-alive", State: ec2fake.Terminated, Tags: tagged("alive")},
			"i-rowgone":   {ID: "i-rowgone", State: ec2fake.Terminated, Tags: tagged("never-a-row")},
			"i-timed-out": {ID: "i-timed-out", State: ec2fake.Terminated, Tags: tagged("stuck-a"), LaunchTime: launched},
			"i-too-young": {ID: "i-too-young", State: ec2fake.Terminated, Tags: tagged("stuck-b"), LaunchTime: at.Add(-provisionTimeout / 2)},
		},
		rows: map[string]workspaces.Workspace{
			"live":        {ID: "live", Status: workspaces.StatusRunning, InstanceID: "i-held"},
			"removed":     {ID: "removed", Status: workspaces.StatusRemoved, InstanceID: "i-leaked"},
			"protected-a": {ID: "protected-a", Status: workspaces.StatusRemoved, InstanceID: "i-recorded"},
			"protected-b": {ID: "protected-b", Status: workspaces.StatusRemoved, InstanceID: "i-silent"},
			"untagged-a":  {ID: "untagged-a", Status: workspaces.StatusRemoved, InstanceID: "i-refused"},
			"untagged-b":  {ID: "untagged-b", Status: workspaces.StatusRemoved, InstanceID: "i-unowned"},
			"mate":        {ID: "mate", Status: workspaces.StatusRemoved},
			"stranded":    {ID: "stranded", Status: workspaces.StatusRemoved, InstanceID: "i-stranded"},
			"reaped":      {ID: "reaped", Status: workspaces.StatusRemoved},
			"cleared":     {ID: "cleared", Status: workspaces.StatusRemoved},
			"early":       {ID: "early", Status: workspaces.StatusRemoved},
			"alive":       {ID: "alive", Status: workspaces.StatusRunning, InstanceID: "i-alive"},
			"stuck-a":     {ID: "stuck-a", Status: workspaces.StatusProvisioning},
			"stuck-b":     {ID: "stuck-b", Status: workspaces.StatusProvisioning},
		},
		removedAt: map[string]time.Time{
			"removed": at, "protected-a": at, "protected-b": at, "untagged-a": at, "untagged-b": at,
			"mate": at, "stranded": at, "reaped": at, "cleared": at, "early": at,
		},
		terminatedAt: map[string]time.Time{
			"i-mate":      at.Add(time.Millisecond),
			"i-reaped":    at.Add(time.Millisecond),
			"i-cleared":   at.Add(2 * time.Millisecond),
			"i-early":     at.Add(-time.Millisecond),
			"i-alive":     at,
			"i-rowgone":   at,
			"i-timed-out": at,
			"i-too-young": at,
		},
		cleared: []clearing{
			{row: "reaped", instance: "i-reaped", at: at.Add(2 * time.Millisecond)},
			{row: "cleared", instance: "i-cleared", at: at.Add(time.Millisecond)},
			{row: "early", instance: "i-early", at: at.Add(time.Millisecond)},
		},
		untagged: map[string]bool{"i-refused": true, "i-unowned": true},
		refusals: [][]string{{"i-refused", "i-mate", "i-recorded"}, {"i-unowned", "i-stranded"}, {"i-refused"}},
		deps: dependents{
			volumes: []ec2fake.Volume{
				{ID: "vol-left", State: ec2fake.VolumeAvailable, Tags: ownedTags("removed")},
				{ID: "vol-rowless", State: ec2fake.VolumeAvailable, Tags: ownedTags("never-a-row")},
				{ID: "vol-detaching", State: ec2fake.VolumeInUse, Tags: ownedTags("reaped"), InstanceID: "i-reaped"},
				{ID: "vol-held", State: ec2fake.VolumeInUse, Tags: ownedTags("live"), InstanceID: "i-held"},
				{ID: "vol-live-row", State: ec2fake.VolumeAvailable, Tags: ownedTags("live")},
				{ID: "vol-protected", State: ec2fake.VolumeInUse, Tags: ownedTags("protected-a"), InstanceID: "i-recorded"},
				{ID: "vol-beside-protected", State: ec2fake.VolumeAvailable, Tags: ownedTags("protected-b")},
				{ID: "vol-unowned", State: ec2fake.VolumeAvailable, Tags: tagged("removed")},
				{ID: "vol-no-row-tag", State: ec2fake.VolumeAvailable, Tags: owner},
			},
			addresses: []ec2fake.Address{
				{AllocationID: "eipalloc-left", Tags: ownedTags("removed")},
				{AllocationID: "eipalloc-held", AssociationID: "eipassoc-held", InstanceID: "i-held", Tags: ownedTags("live")},
				{AllocationID: "eipalloc-protected", AssociationID: "eipassoc-protected", InstanceID: "i-silent", Tags: ownedTags("protected-b")},
			},
			interfaces: []ec2fake.NetworkInterface{
				{ID: "eni-left", State: ec2fake.InterfaceAvailable, Tags: ownedTags("cleared")},
				{ID: "eni-primary", State: ec2fake.InterfaceInUse, InstanceID: "i-held"},
			},
			spots: []ec2fake.SpotRequest{
				{ID: "sir-left", State: ec2fake.SpotOpen, Tags: ownedTags("never-a-row")},
				{ID: "sir-cancelled", State: ec2fake.SpotCancelled, Tags: ownedTags("removed")},
				{ID: "sir-active", State: ec2fake.SpotActive, InstanceID: "i-held", Tags: ownedTags("live")},
			},
		},
		events: []events.Event{
			{Type: events.TypeReapFailed, Subject: "protected-a", Payload: map[string]any{"instance_id": "i-recorded"}},
			{Type: events.TypeRetryExhausted, Subject: "untagged-a", Payload: map[string]any{"instance_id": "i-refused", "cause": events.CauseExhausted}},
			{Type: events.TypeReapFailed, Subject: "untagged-b", Payload: map[string]any{"instance_id": "i-unowned", "permanent": false}},
			{Type: events.TypeRetryExhausted, Subject: "i-once"},
			{Type: events.TypeRetryExhausted, Subject: "i-twice"},
			{Type: events.TypeRetryExhausted, Subject: "i-unasked"},
		},
	}
	w := &world{}
	w.apiStats.gaveUp.add("i-refused", 1)
	w.apiStats.gaveUp.add("i-once", 1)
	w.apiStats.gaveUp.add("i-twice", 2)
	w.apiStats.gaveUp.add("i-lost", 1)

	v := w.check(s)
	for _, c := range []struct {
		name  string
		found []string
		want  []string
	}{
		{"leaked", v.leaked, []string{"i-leaked", "i-stranded"}},
		{"unrecorded", v.unrecorded, []string{"i-silent", "i-unowned"}},
		{"liveTerminated", v.liveTerminated, []string{"i-alive", "i-early", "i-too-young"}},
		{"clearedLive", v.clearedLive, []string{"i-cleared"}},
		{"stranded", v.stranded, []string{"i-stranded"}},
		{"ledger", v.ledger, []string{"i-lost", "i-twice", "i-unasked"}},
		{"dependentsLeft", v.dependentsLeft, []string{"eipalloc-left", "eni-left", "sir-left", "vol-detaching", "vol-left", "vol-rowless"}},
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
	if v.liveInstances != 7 || v.liveHeld != 1 || v.protectedLeft != 2 || v.untaggedLeft != 2 {
		t.Errorf("live %d, held %d, protected %d, untagged %d; want 7, 1, 2, 2", v.liveInstances, v.liveHeld, v.protectedLeft, v.untaggedLeft)
	}
	if v.refusals != 3 || v.refusalsOfSeveral != 2 || v.provisionTimedOut != 1 {
		t.Errorf("refusals %d (%d of several), provision timeouts %d; want 3 (2), 1", v.refusals, v.refusalsOfSeveral, v.provisionTimedOut)
	}
}
