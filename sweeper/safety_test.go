package sweeper

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// fleet is an in-memory cloud for the safety tests: a Stopper that
// terminates, an Inventory of the owned instances and a Describer. Its
// launch times are real time.Time values, so inside a synctest bubble they
// are the same clock store.Memory reads.
type fleet struct {
	mu        sync.Mutex
	instances map[string]*teardown.Instance
	stopped   []string
	answer    func(id string) error // nil: every stop succeeds
	describe  bool                  // whether it offers Describe (else Owned is listed again)
	lists     int
}

func newFleet() *fleet { return &fleet{instances: map[string]*teardown.Instance{}, describe: true} }

// liveHeld adds n live rows, each holding a running instance: the fleet
// around the instances a test is about.
func liveHeld(mem *store.Memory, f *fleet, n int) {
	for i := range n {
		rid, iid := fmt.Sprintf("live-%d", i), fmt.Sprintf("i-live-%d", i)
		mem.Put(store.Row{ID: rid, Status: "running", InstanceID: iid})
		f.launch(iid, rid, time.Hour)
	}
}

// launch adds a running owned instance launched age ago, tagged with rid
// (none when empty) and any extra tags.
func (f *fleet) launch(id, rid string, age time.Duration, tags ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := &teardown.Instance{ID: id, State: "running", LaunchedAt: time.Now().Add(-age), Tags: map[string]string{}}
	if rid != "" {
		in.Tags[DefaultResourceTag] = rid
	}
	for i := 0; i+1 < len(tags); i += 2 {
		in.Tags[tags[i]] = tags[i+1]
	}
	f.instances[id] = in
}

func (f *fleet) terminate(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in, ok := f.instances[id]; ok {
		in.State = "terminated"
	}
}

func (f *fleet) Stop(_ context.Context, id string) error {
	f.mu.Lock()
	answer := f.answer
	f.stopped = append(f.stopped, id)
	f.mu.Unlock()
	if answer != nil {
		if err := answer(id); err != nil {
			return err
		}
	}
	f.terminate(id)
	return nil
}

func (f *fleet) Owned(context.Context) ([]teardown.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	var out []teardown.Instance
	for _, id := range slices.Sorted(maps.Keys(f.instances)) {
		if in := f.instances[id]; in.State != "terminated" {
			out = append(out, *in)
		}
	}
	return out, nil
}

func (f *fleet) Describe(_ context.Context, ids []string) ([]teardown.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []teardown.Instance
	for _, id := range ids {
		if in, ok := f.instances[id]; ok {
			out = append(out, *in)
		}
	}
	return out, nil
}

func (f *fleet) stops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stopped)
}

// listOnly hides fleet's Describe, so the sweeper must list again.
type listOnly struct{ f *fleet }

func (l listOnly) Owned(ctx context.Context) ([]teardown.Instance, error) { return l.f.Owned(ctx) }
func (l listOnly) Stop(ctx context.Context, id string) error              { return l.f.Stop(ctx, id) }

// hookedStore runs beforeKnown just before each Known read: what other
// replicas and request handlers do between the sweeper's listing and its
// store read.
type hookedStore struct {
	store.Store
	beforeKnown func()
	reapedErr   func(p store.Pending) error
}

func (h *hookedStore) Known(ctx context.Context, rids, iids []string) (store.Known, error) {
	if h.beforeKnown != nil {
		h.beforeKnown()
	}
	return h.Store.Known(ctx, rids, iids)
}

func (h *hookedStore) Reaped(ctx context.Context, p store.Pending) (bool, error) {
	if h.reapedErr != nil {
		if err := h.reapedErr(p); err != nil {
			return false, err
		}
	}
	return h.Store.Reaped(ctx, p)
}

func sweep(t *testing.T, sw *Sweeper) Report {
	t.Helper()
	rep, err := sw.SweepOnce(t.Context())
	if err != nil {
		t.Fatalf("SweepOnce: %v", err)
	}
	return rep
}

// The replica's clock decides nothing: ages come from the store's clock at
// its read, due times from the store's clock at its write.
func TestReplicaClockSkewDecidesNothing(t *testing.T) {
	for _, skew := range []time.Duration{-24 * time.Hour, -2 * time.Hour, 20 * time.Minute, 24 * time.Hour} {
		t.Run(fmt.Sprintf("replica %v", skew), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := store.NewMemory(table)
				f := newFleet()
				f.launch("i-young", "gone-young", time.Minute) // MinAge 15m: never a candidate yet
				mem.Put(store.Row{ID: "perm", Status: "removed", InstanceID: "i-perm"})
				mem.Put(store.Row{ID: "retry", Status: "removed", InstanceID: "i-retry"})
				f.launch("i-perm", "perm", time.Hour)
				f.launch("i-retry", "retry", time.Hour)
				retried := 0
				f.answer = func(id string) error {
					switch id {
					case "i-perm":
						return teardown.Permanent(errors.New("OperationNotPermitted"))
					case "i-retry":
						if retried++; retried == 1 {
							return errors.New("InternalError")
						}
					}
					return nil
				}
				sw := newSweeper(t, mem, f, WithRowGone(f, RowGone{MinAge: 15 * time.Minute, ConfirmPasses: 1}),
					WithRetry(teardown.WithMaxAttempts(1)), withClock(func() time.Time { return time.Now().Add(skew) }))

				start := time.Now()
				for time.Since(start) < 10*time.Minute {
					sweep(t, sw)
					time.Sleep(30 * time.Second)
				}
				stops := f.stops()
				if n := count(stops, "i-young"); n != 0 {
					t.Errorf("the 1-minute-old instance was terminated %d times, want 0", n)
				}
				if n := count(stops, "i-perm"); n != 1 {
					t.Errorf("the permanently failing row was stopped %d times in 10 minutes, want 1 (backoff 1h)", n)
				}
				if n := count(stops, "i-retry"); n != 2 {
					t.Errorf("the retryable row was stopped %d times, want 2 (again after its 1m backoff)", n)
				}
				if r, _ := mem.Get("retry"); r.InstanceID != "" {
					t.Errorf("retry row still holds %q, want it cleared", r.InstanceID)
				}
			})
		})
	}
}

func count(ids []string, id string) int {
	n := 0
	for _, s := range ids {
		if s == id {
			n++
		}
	}
	return n
}

// deletesInFlight launches n instances held by live rows, and returns a
// hook that, run between the listing and the store read, deletes them the
// way the request path does: row removed, instance terminated, row cleared.
func deletesInFlight(mem *store.Memory, f *fleet, n int) func() {
	for i := range n {
		rid, iid := fmt.Sprintf("ws-%d", i), fmt.Sprintf("i-%d", i)
		mem.Put(store.Row{ID: rid, Status: "running", InstanceID: iid})
		f.launch(iid, rid, time.Hour)
	}
	done := false
	return func() {
		if done {
			return
		}
		done = true
		for i := range n {
			rid, iid := fmt.Sprintf("ws-%d", i), fmt.Sprintf("i-%d", i)
			f.terminate(iid)
			mem.Put(store.Row{ID: rid, Status: "removed"})
		}
	}
}

func TestDeletesInFlightAreNotOrphans(t *testing.T) {
	for _, describe := range []bool{true, false} {
		t.Run(fmt.Sprintf("describer=%v", describe), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem, f, sink := store.NewMemory(table), newFleet(), events.NewMemory()
				hook := deletesInFlight(mem, f, 60)
				liveHeld(mem, f, 10)
				f.launch("i-orphan", "ws-lost", time.Hour)
				st := &hookedStore{Store: mem, beforeKnown: hook}
				var inv teardown.Inventory = f
				if !describe {
					inv = listOnly{f}
				}
				sw := newSweeper(t, st, f, WithEvents(sink), WithRowGone(inv, RowGone{}))

				first, second := sweep(t, sw), sweep(t, sw)
				if first.Aborted != "" || second.Aborted != "" {
					t.Fatalf("aborted: %q, %q; want no breaker trip", first.Aborted, second.Aborted)
				}
				if first.RowGoneSeen != 1 || second.RowGoneTerminated != 1 {
					t.Errorf("reports %+v, %+v; want 1 candidate in pass 1 and the orphan terminated in pass 2", first, second)
				}
				if got := f.stops(); !slices.Equal(got, []string{"i-orphan"}) {
					t.Errorf("stopped %v, want only i-orphan", got)
				}
				if got := subjects(sink, events.TypeRowGoneDetected); !slices.Equal(got, []string{"ws-lost"}) {
					t.Errorf("%s subjects = %v, want only ws-lost", events.TypeRowGoneDetected, got)
				}
			})
		})
	}
}

func TestWholeSweeperDryRunTouchesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem, f, sink := store.NewMemory(table), newFleet(), events.NewMemory()
		putRemoved(mem, 3, "")
		f.launch("i-orphan", "ws-lost", time.Hour)
		f.launch("i-removed", "r-old", time.Hour)
		mem.Put(store.Row{ID: "r-old", Status: "removed"})
		liveHeld(mem, f, 10)
		sw := newSweeper(t, mem, f, WithEvents(sink), WithRowGone(f, RowGone{}), WithDryRun())

		var reps []Report
		for range 3 {
			reps = append(reps, sweep(t, sw))
		}
		if got := f.stops(); len(got) != 0 {
			t.Errorf("a dry run stopped %v, want nothing", got)
		}
		for i := range 3 {
			if r, _ := mem.Get(fmt.Sprintf("r%d", i)); r.InstanceID == "" {
				t.Errorf("row r%d was cleared by a dry run", i)
			}
		}
		if p, _ := mem.Pending(t.Context(), 10); len(p) != 3 || p[0].Attempts != 0 {
			t.Errorf("pending after the dry run = %+v, want the 3 rows with no attempt recorded", p)
		}
		if reps[0].DryRun != 3 || reps[1].DryRun != 5 {
			t.Errorf("dry-run counts %d, %d; want 3 (the rows) then 5 (the rows and the 2 confirmed candidates)", reps[0].DryRun, reps[1].DryRun)
		}
		var stop, terminate int
		for _, e := range ofType(sink, events.TypeDryRun) {
			switch e.Payload["action"] {
			case "stop":
				stop++
			case "terminate":
				terminate++
			}
		}
		if stop != 9 || terminate != 4 {
			t.Errorf("%s events: %d stop, %d terminate; want 9 and 4", events.TypeDryRun, stop, terminate)
		}
		if n := len(sink.Events()) - stop - terminate - len(ofType(sink, events.TypeRowGoneDetected)); n != 0 {
			t.Errorf("%d events other than dry-run and detected ones: %+v", n, sink.Events())
		}
	})
}

func TestKeepTagKeepsAnOrphan(t *testing.T) {
	for _, key := range []string{"", "ops:hands-off"} {
		t.Run("key "+key, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem, f := store.NewMemory(table), newFleet()
				tag := key
				if tag == "" {
					tag = DefaultKeepTag
				}
				f.launch("i-kept", "ws-lost", time.Hour, tag, "")
				f.launch("i-kept-removed", "r-old", time.Hour, tag, "incident-42")
				mem.Put(store.Row{ID: "r-old", Status: "removed"})
				f.launch("i-orphan", "ws-lost-2", time.Hour)
				sw := newSweeper(t, mem, f, WithRowGone(f, RowGone{KeepTag: key, MaxFraction: 1}))

				reps := []Report{sweep(t, sw), sweep(t, sw), sweep(t, sw)}
				for i, r := range reps {
					if r.Kept != 2 {
						t.Errorf("pass %d: kept %d, want 2", i+1, r.Kept)
					}
				}
				if got := f.stops(); !slices.Equal(got, []string{"i-orphan"}) {
					t.Errorf("stopped %v, want only i-orphan", got)
				}
			})
		})
	}
}

func TestNotFoundIsGoneOnlyAfterTheSettleWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem, sink := store.NewMemory(table), events.NewMemory()
		mem.Put(store.Row{ID: "r", Status: "removed", InstanceID: "i-new"})
		stop := &recorder{answer: func(context.Context, string) error {
			return fmt.Errorf("InvalidInstanceID.NotFound: %w", teardown.ErrNotFound)
		}}
		sw := newSweeper(t, mem, stop, WithEvents(sink), WithRetry(teardown.WithMaxAttempts(1)),
			WithRowBackoff(30*time.Second, time.Hour), WithNotFoundSettle(2*time.Minute))

		start := time.Now()
		var clearedAt time.Duration
		for time.Since(start) < 10*time.Minute && clearedAt == 0 {
			sweep(t, sw)
			if r, _ := mem.Get("r"); r.InstanceID == "" {
				clearedAt = time.Since(start)
			}
			time.Sleep(10 * time.Second)
		}
		if clearedAt < 2*time.Minute {
			t.Fatalf("row cleared %v after the first NotFound, want it kept for the 2m settle window", clearedAt)
		}
		if clearedAt > 4*time.Minute {
			t.Errorf("row cleared only after %v, want soon after the 2m window", clearedAt)
		}
		if n := len(ofType(sink, events.TypeReaped)); n != 1 {
			t.Errorf("%d reaped events, want 1", n)
		}
	})
}

func TestARowWhoseClearFailsDoesNotStarveTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 3, "")
		st := &hookedStore{Store: mem, reapedErr: func(p store.Pending) error {
			if p.ResourceID == "r0" {
				return errors.New(`null value in column "instance_id" violates not-null constraint`)
			}
			return nil
		}}
		sw := newSweeper(t, st, &recorder{}, WithBatchSize(1))
		// The first pass ends at r0, whose clear cannot be written; the
		// next must move past it.
		if _, err := sw.SweepOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "r0") {
			t.Errorf("first SweepOnce error = %v, want the failed clear of r0 reported", err)
		}
		sweep(t, sw)
		for _, id := range []string{"r1", "r2"} {
			if r, _ := mem.Get(id); r.InstanceID != "" {
				t.Errorf("%s still holds %s: a row whose clear failed starved the queue", id, r.InstanceID)
			}
		}
		if p, _ := mem.Pending(t.Context(), 10); len(p) != 0 {
			t.Errorf("pending = %+v, want r0 backing off", p)
		}
	})
}

func TestStuckProvisioningIsALeakAfterTheTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem, f := store.NewMemory(table), newFleet()
		mem.Put(store.Row{ID: "stuck", Status: "provisioning"})
		mem.Put(store.Row{ID: "fresh", Status: "provisioning"})
		f.launch("i-stuck", "stuck", 2*time.Hour)
		f.launch("i-fresh", "fresh", 30*time.Minute)
		sw := newSweeper(t, mem, f, WithRowGone(f, RowGone{ProvisionTimeout: time.Hour, MaxFraction: 1}))

		sweep(t, sw)
		sweep(t, sw)
		if got := f.stops(); !slices.Equal(got, []string{"i-stuck"}) {
			t.Errorf("stopped %v, want only i-stuck (its row has provisioned for 2h, past the 1h timeout)", got)
		}
	})
}

func TestInventoryAloneReapsInstancesOfRemovedRows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem, f, sink := store.NewMemory(table), newFleet(), events.NewMemory()
		// A create launched i-lost and crashed before recording it; its row
		// was deleted since.
		mem.Put(store.Row{ID: "r-lost", Status: "removed"})
		f.launch("i-lost", "r-lost", time.Minute)
		f.launch("i-unexplained", "no-such-row", time.Hour) // row-gone: needs WithRowGone
		mem.Put(store.Row{ID: "live", Status: "running", InstanceID: "i-live"})
		f.launch("i-live", "live", time.Hour)
		mem.Put(store.Row{ID: "r-held", Status: "removed", InstanceID: "i-held"}) // pending: the re-drive's
		f.launch("i-held", "r-held", time.Hour)
		sw := newSweeper(t, mem, f, WithEvents(sink), WithInventory(f))

		first := sweep(t, sw)
		if slices.Contains(f.stops(), "i-lost") {
			t.Errorf("i-lost terminated on the first pass, want confirmation by a second")
		}
		second := sweep(t, sw)
		if first.RowGoneSeen != 1 || second.RowGoneTerminated != 1 {
			t.Errorf("reports %+v, %+v; want i-lost seen, then terminated", first, second)
		}
		stops := f.stops()
		slices.Sort(stops)
		if !slices.Equal(stops, []string{"i-held", "i-lost"}) {
			t.Errorf("stopped %v, want i-held (re-driven) and i-lost (its row removed), never i-live or i-unexplained", stops)
		}
		ev := ofType(sink, events.TypeRowGoneTerminated)
		if len(ev) != 1 || ev[0].Payload["reason"] != ReasonRowRemoved {
			t.Errorf("terminated events = %+v, want one with reason %s", ev, ReasonRowRemoved)
		}
	})
}

// blockedSink blocks every write until its context ends, like a sink whose
// table is locked.
type blockedSink struct{}

func (blockedSink) Emit(ctx context.Context, _ events.Event) error {
	<-ctx.Done()
	return ctx.Err()
}

func (blockedSink) EmitBatch(ctx context.Context, _ []events.Event) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestABlockedSinkCostsThePassOnceAndClearsEveryRow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 20, "")
		sw := newSweeper(t, mem, &recorder{}, WithEvents(blockedSink{}), WithPassTimeout(2*time.Second), WithBatchSize(5))
		start := time.Now()
		rep, _ := sw.SweepOnce(t.Context())
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("pass took %v with a blocked sink, want at most 3s", d)
		}
		if rep.Reaped != 20 {
			t.Errorf("reaped %d, want 20", rep.Reaped)
		}
		if p, _ := mem.Pending(t.Context(), 100); len(p) != 0 {
			t.Errorf("%d rows left uncleared", len(p))
		}
	})
}

func TestEventPayloadsCarryNoNULBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem, sink := store.NewMemory(table), events.NewMemory()
		putRemoved(mem, 1, "")
		stop := &recorder{answer: func(context.Context, string) error { return errors.New("bad\x00body\xff") }}
		sw := newSweeper(t, mem, stop, WithEvents(sink), WithRetry(teardown.WithMaxAttempts(1)))
		sweep(t, sw)
		ev := ofType(sink, events.TypeReapFailed)
		if len(ev) != 1 {
			t.Fatalf("%d failed events, want 1", len(ev))
		}
		if s, _ := ev[0].Payload["error"].(string); strings.ContainsRune(s, 0) || !strings.Contains(s, "badbody") {
			t.Errorf("error text %q, want the NUL byte stripped", s)
		}
	})
}

// slowStopper takes d per stop, so a pass can clear only so many rows.
type slowStopper struct{ d time.Duration }

func (s slowStopper) Stop(ctx context.Context, _ string) error {
	select {
	case <-time.After(s.d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestRunKeepsDrainingABacklogWithoutWaitingTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 100, "")
		// 1s per stop, 10 at a time, 4s of work per pass: 40 rows a pass.
		sw := newSweeper(t, mem, slowStopper{time.Second}, WithPassTimeout(5*time.Second), WithBatchSize(10),
			WithConcurrency(10), WithInterval(time.Hour))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- sw.Run(ctx) }()
		time.Sleep(30 * time.Second)
		left, _ := mem.Pending(t.Context(), 1000)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if len(left) != 0 {
			t.Errorf("%d of 100 rows still due after 30s: the backlog waited for the 1h interval", len(left))
		}
	})
}

// The events table locked (a migration, VACUUM FULL): the pass still clears
// every stopped row and returns within its timeout plus a margin, never one
// write timeout per row.
func TestALockedEventsTableCostsThePassOnceOnPostgres(t *testing.T) {
	h, c := newHostDB(t), newFakeCloud(t)
	sink, err := events.NewPgx(h.db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		id := c.launch(t, 1, ownerValue, fmt.Sprint("rm-", i), 0)[0]
		h.put(t, fmt.Sprint("rm-", i), "removed", id)
	}
	tx, err := h.db.Pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), `LOCK TABLE structure_events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	sw := newSweeper(t, h.st, c.ec2, WithEvents(sink), WithPassTimeout(2*time.Second))
	start := time.Now()
	rep, _ := sw.SweepOnce(t.Context())
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("pass took %v with the events table locked, want at most 3s", d)
	}
	if rep.Reaped != 20 {
		t.Errorf("reaped %d, want 20", rep.Reaped)
	}
	for i := range 20 {
		if inst := h.instanceOf(t, fmt.Sprint("rm-", i)); inst != "" {
			t.Errorf("rm-%d still holds %s", i, inst)
		}
	}
}
