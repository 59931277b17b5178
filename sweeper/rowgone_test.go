package sweeper

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
)

// old is the age of the instances most tests launch: past the default
// MinAge of 10 minutes.
const old = time.Hour

// rowGoneSweeper returns a sweeper over h and c with row-gone reaping on.
func rowGoneSweeper(t *testing.T, st store.Store, c *cloud, sink *events.Memory, cfg RowGone, opts ...Option) *Sweeper {
	t.Helper()
	opts = append([]Option{WithEvents(sink), WithRowGone(c.ec2, cfg)}, opts...)
	return newSweeper(t, st, c.ec2, opts...)
}

// passes runs n passes and returns their reports.
func passes(t *testing.T, sw *Sweeper, n int) []Report {
	t.Helper()
	reps := make([]Report, n)
	for i := range n {
		rep, err := sw.SweepOnce(t.Context())
		if err != nil {
			t.Fatalf("pass %d: %v", i+1, err)
		}
		reps[i] = rep
	}
	return reps
}

// liveRows writes n live rows ws-0…, each holding a launched instance.
func liveRows(t *testing.T, h *hostDB, c *cloud, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		rid := prefix + strconv.Itoa(i)
		id := c.launch(t, 1, ownerValue, rid, old)[0]
		h.put(t, rid, "running", id)
		ids = append(ids, id)
	}
	return ids
}

// assertNothingTerminated checks the cloud saw no TerminateInstances call
// and every instance is still running.
func assertNothingTerminated(t *testing.T, c *cloud) {
	t.Helper()
	if n := c.terminateCalls(); n != 0 {
		t.Errorf("TerminateInstances called %d times, want 0", n)
	}
	if got := c.terminated(t); len(got) != 0 {
		t.Errorf("terminated %v, want none", got)
	}
}

// abortReasons returns the reason of every TypeSweepAborted event.
func abortReasons(sink *events.Memory) []string {
	var out []string
	for _, e := range ofType(sink, events.TypeSweepAborted) {
		r, _ := e.Payload["reason"].(string)
		out = append(out, r)
	}
	return out
}

func TestRowGoneTerminatesAConfirmedOrphan(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	live := liveRows(t, h, c, "ws-", 2)
	orphan := c.launch(t, 1, ownerValue, "ws-lost", old)
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{})

	first := passes(t, sw, 1)[0]
	if first.RowGoneSeen != 1 || first.RowGoneTerminated != 0 {
		t.Errorf("first pass = %+v, want 1 seen, 0 terminated", first)
	}
	if got := subjects(sink, events.TypeRowGoneDetected); !slices.Equal(got, []string{"ws-lost"}) {
		t.Errorf("%s subjects = %v, want [ws-lost]", events.TypeRowGoneDetected, got)
	}
	assertNothingTerminated(t, c)

	second := passes(t, sw, 1)[0]
	if second.RowGoneTerminated != 1 {
		t.Errorf("second pass = %+v, want 1 terminated", second)
	}
	if got := c.terminated(t); !slices.Equal(got, orphan) {
		t.Errorf("terminated %v, want only the orphan %v (live: %v)", got, orphan, live)
	}
	ev := ofType(sink, events.TypeRowGoneTerminated)
	if len(ev) != 1 || ev[0].Subject != "ws-lost" || ev[0].Payload["instance_id"] != orphan[0] {
		t.Errorf("%s events = %+v, want one for ws-lost / %s", events.TypeRowGoneTerminated, ev, orphan[0])
	}
}

func TestRowGoneReapsTheInstanceARestartReplaced(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	// ws-1 restarted: its row now holds the new instance, and the stop of
	// the old one failed unnoticed.
	replaced := c.launch(t, 1, ownerValue, "ws-1", old)
	replacement := c.launch(t, 1, ownerValue, "ws-1", old)
	h.put(t, "ws-1", "running", replacement[0])
	// ws-2 is still provisioning: launched, its instance id not yet recorded.
	h.put(t, "ws-2", "provisioning", "")
	provisioning := c.launch(t, 1, ownerValue, "ws-2", DefaultProvisionTimeout/2)
	liveRows(t, h, c, "ws-live-", 1)
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{})

	reps := passes(t, sw, 3)
	if reps[0].RowGoneSeen != 1 || reps[1].RowGoneTerminated != 1 {
		t.Errorf("reports = %+v, want 1 seen in the first pass and 1 terminated in the second", reps)
	}
	if got := c.terminated(t); !slices.Equal(got, replaced) {
		t.Errorf("terminated %v, want only the replaced instance %v (replacement %v, provisioning %v)",
			got, replaced, replacement, provisioning)
	}
}

func TestRowGoneTerminatesNothingWhenTheStoreIsUnreachable(t *testing.T) {
	c, sink := newFakeCloud(t), events.NewMemory()
	c.launch(t, 3, ownerValue, "ws-gone", old)
	pool, err := pgxpool.New(t.Context(), "postgres://postgres@127.0.0.1:1/none?connect_timeout=2")
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	defer pool.Close()
	st, err := store.NewPgx(pool, table)
	if err != nil {
		t.Fatalf("store.NewPgx: %v", err)
	}
	sw := rowGoneSweeper(t, st, c, sink, RowGone{ConfirmPasses: 1, MaxFraction: 1})

	for i := range 3 {
		rep, err := sw.SweepOnce(t.Context())
		if err == nil || rep.Aborted != AbortStore || rep.RowGoneTerminated != 0 {
			t.Errorf("pass %d = %+v, %v; want an error and Aborted %q", i+1, rep, err, AbortStore)
		}
	}
	assertNothingTerminated(t, c)
	if got := abortReasons(sink); !slices.Equal(got, []string{AbortStore, AbortStore, AbortStore}) {
		t.Errorf("abort reasons = %v, want %s three times", got, AbortStore)
	}
}

func TestRowGoneBreakerTripsOnAnEmptyHostTable(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	for i := range 50 {
		c.launch(t, 1, ownerValue, "ws-"+strconv.Itoa(i), old)
	}
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{})

	for i, rep := range passes(t, sw, 3) {
		if rep.Aborted != AbortMaxFraction || rep.RowGoneTerminated != 0 {
			t.Errorf("pass %d = %+v, want Aborted %q", i+1, rep, AbortMaxFraction)
		}
	}
	assertNothingTerminated(t, c)
	ev := ofType(sink, events.TypeSweepAborted)
	if len(ev) != 3 || ev[0].Payload["candidates"] != 50 || ev[0].Payload["owned"] != 50 {
		t.Errorf("%s events = %+v, want 3 naming 50 candidates of 50 owned", events.TypeSweepAborted, ev)
	}
	if n := len(ofType(sink, events.TypeRowGoneDetected)); n != 0 {
		t.Errorf("%d %s events from passes that tripped the breaker, want 0", n, events.TypeRowGoneDetected)
	}
}

func TestRowGoneBreakerTripsOnTooManyCandidates(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	liveRows(t, h, c, "ws-live-", 65)
	c.launch(t, 55, ownerValue, "", old) // under half of 120, but more than 50
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{})

	for i, rep := range passes(t, sw, 3) {
		if rep.Aborted != AbortMaxPerPass {
			t.Errorf("pass %d = %+v, want Aborted %q", i+1, rep, AbortMaxPerPass)
		}
	}
	assertNothingTerminated(t, c)
}

func TestRowGoneSparesInstancesYoungerThanMinAge(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	liveRows(t, h, c, "ws-live-", 4)
	c.launch(t, 2, ownerValue, "ws-new", 9*time.Minute)
	c.launch(t, 1, ownerValue, "ws-newer", 0)
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{})

	for i, rep := range passes(t, sw, 3) {
		if rep.RowGoneSeen != 0 || rep.Aborted != "" {
			t.Errorf("pass %d = %+v, want nothing seen: the instances are younger than MinAge", i+1, rep)
		}
	}
	assertNothingTerminated(t, c)
}

func TestRowGoneSparesAnInstanceSeenOrphanedOnce(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	liveRows(t, h, c, "ws-live-", 2)
	late := c.launch(t, 1, ownerValue, "ws-late", old)
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{})

	if rep := passes(t, sw, 1)[0]; rep.RowGoneSeen != 1 {
		t.Fatalf("first pass = %+v, want the unrecorded instance seen", rep)
	}
	// The host records the instance after all; a later delete removes the
	// row outright. Seen, then in use, then seen again is not two
	// consecutive passes.
	h.put(t, "ws-late", "running", late[0])
	if rep := passes(t, sw, 1)[0]; rep.RowGoneSeen != 0 {
		t.Fatalf("second pass = %+v, want nothing seen while the row holds it", rep)
	}
	if _, err := h.db.Pool.Exec(t.Context(), `DELETE FROM workspaces WHERE id = 'ws-late'`); err != nil {
		t.Fatal(err)
	}
	if rep := passes(t, sw, 1)[0]; rep.RowGoneSeen != 1 || rep.RowGoneTerminated != 0 {
		t.Fatalf("third pass = %+v, want it seen again but not terminated", rep)
	}
	assertNothingTerminated(t, c)

	if rep := passes(t, sw, 1)[0]; rep.RowGoneTerminated != 1 {
		t.Errorf("fourth pass = %+v, want it terminated after two consecutive sightings", rep)
	}
}

func TestRowGoneSparesAnotherDeploymentsInstances(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	liveRows(t, h, c, "ws-live-", 2)
	// Same tag key, another value, and no row here: not ours to judge.
	c.launch(t, 5, otherValue, "ws-theirs", old)
	c.launch(t, 1, otherValue, "", old)
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{MaxFraction: 1, ConfirmPasses: 1})

	for i, rep := range passes(t, sw, 3) {
		if rep.RowGoneSeen != 0 {
			t.Errorf("pass %d = %+v, want nothing seen", i+1, rep)
		}
	}
	assertNothingTerminated(t, c)
}

func TestRowGoneDryRunTerminatesNothing(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	liveRows(t, h, c, "ws-live-", 3)
	orphans := c.launch(t, 2, ownerValue, "ws-gone", old)
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{DryRun: true})

	for i, rep := range passes(t, sw, 3) {
		if rep.RowGoneSeen != 2 || rep.RowGoneTerminated != 0 {
			t.Errorf("pass %d = %+v, want 2 seen, 0 terminated", i+1, rep)
		}
	}
	assertNothingTerminated(t, c)
	var would []string
	for _, e := range ofType(sink, events.TypeDryRun) {
		would = append(would, e.Payload["instance_id"].(string))
	}
	// Confirmed in the second pass and again in the third.
	if want := sorted(orphans, orphans); !slices.Equal(sorted(would), want) {
		t.Errorf("%s instances = %v, want %v", events.TypeDryRun, sorted(would), want)
	}
}

func TestRowGoneRefusesAnInventoryWithoutOwnerFilter(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	c.launch(t, 3, ownerValue, "ws-gone", old)
	unfiltered, err := awsec2.New(c.api) // no WithOwner
	if err != nil {
		t.Fatalf("awsec2.New: %v", err)
	}
	sw := newSweeper(t, h.st, c.ec2, WithEvents(sink),
		WithRowGone(unfiltered, RowGone{ConfirmPasses: 1, MaxFraction: 1}))

	for i := range 2 {
		rep, err := sw.SweepOnce(t.Context())
		if err == nil || rep.Aborted != AbortInventory {
			t.Errorf("pass %d = %+v, %v; want an error and Aborted %q", i+1, rep, err, AbortInventory)
		}
	}
	assertNothingTerminated(t, c)
}

// orderedStore and orderedInventory log the order of the row-gone reads.
type orderedStore struct {
	store.Store
	log *[]string
}

func (o orderedStore) Known(ctx context.Context, rids, iids []string) (store.Known, error) {
	*o.log = append(*o.log, "store")
	return o.Store.Known(ctx, rids, iids)
}

type orderedInventory struct {
	teardown.Inventory
	log *[]string
}

func (o orderedInventory) Owned(ctx context.Context) ([]teardown.Instance, error) {
	*o.log = append(*o.log, "inventory")
	return o.Inventory.Owned(ctx)
}

// The inventory must be listed before the store is read: an instance in
// the listing was launched before it, so a row written before that launch
// is seen by the store read that follows. The other order would let a row
// and its instance appear between the reads, the instance listed and the
// row missed.
func TestRowGoneListsTheInventoryBeforeReadingTheStore(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	liveRows(t, h, c, "ws-", 2)
	var log []string
	sw := newSweeper(t, orderedStore{h.st, &log}, c.ec2, WithEvents(sink),
		WithRowGone(orderedInventory{c.ec2, &log}, RowGone{}))
	passes(t, sw, 2)
	if want := []string{"inventory", "store", "inventory", "store"}; !slices.Equal(log, want) {
		t.Errorf("reads in order %v, want %v", log, want)
	}
}

func TestRowGoneAbortForgetsWhatItHadSeen(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	liveRows(t, h, c, "ws-", 2)
	c.launch(t, 1, ownerValue, "ws-lost", old)
	fail := false
	inv := inventoryFunc(func(ctx context.Context) ([]teardown.Instance, error) {
		if fail {
			return nil, errors.New("DescribeInstances: RequestLimitExceeded")
		}
		return c.ec2.Owned(ctx)
	})
	sw := newSweeper(t, h.st, c.ec2, WithEvents(sink), WithRowGone(inv, RowGone{}))

	// Seen, then a pass that could not look, then seen: not two
	// consecutive sightings.
	passes(t, sw, 1)
	fail = true
	if rep, err := sw.SweepOnce(t.Context()); err == nil || rep.Aborted != AbortInventory {
		t.Errorf("pass with a failing inventory = %+v, %v; want an error and Aborted %q", rep, err, AbortInventory)
	}
	fail = false
	if rep := passes(t, sw, 1)[0]; rep.RowGoneSeen != 1 || rep.RowGoneTerminated != 0 {
		t.Errorf("pass after the abort = %+v, want 1 seen, 0 terminated", rep)
	}
	assertNothingTerminated(t, c)
	if got := abortReasons(sink); !slices.Equal(got, []string{AbortInventory}) {
		t.Errorf("abort reasons = %v, want [%s]", got, AbortInventory)
	}
}

func TestRowGoneProtectedOrphanIsTriedOncePerBackoffStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newInProcessCloud(t)
		fake := c.fake
		mem := store.NewMemory(table)
		for i := range 2 {
			id := c.launch(t, 1, ownerValue, "ws-"+strconv.Itoa(i), old)[0]
			mem.Put(store.Row{ID: "ws-" + strconv.Itoa(i), Status: "running", InstanceID: id})
		}
		orphan := c.launch(t, 1, ownerValue, "ws-lost", old)[0]
		fake.Protect(orphan)
		sink := events.NewMemory()
		sw := newSweeper(t, mem, c.ec2, WithEvents(sink), WithRowGone(c.ec2, RowGone{}))

		start := time.Now()
		for time.Since(start) < 150*time.Minute {
			if _, err := sw.SweepOnce(t.Context()); err != nil {
				t.Fatalf("SweepOnce: %v", err)
			}
			time.Sleep(time.Minute)
		}
		// Confirmed in the second pass; refused as protected, so tried
		// again only after the maximum backoff, not every minute.
		want := []time.Duration{time.Minute, 61 * time.Minute, 121 * time.Minute}
		if got := attemptsOn(fake, orphan, start); !slices.Equal(got, want) {
			t.Errorf("TerminateInstances naming the protected orphan at %v, want %v", got, want)
		}
		failed := ofType(sink, events.TypeReapFailed)
		if len(failed) != 3 || failed[0].Payload["error_code"] != "OperationNotPermitted" || failed[0].Payload["row_gone"] != true {
			t.Errorf("%s events = %+v, want 3 with error_code OperationNotPermitted", events.TypeReapFailed, failed)
		}
		if n := len(ofType(sink, events.TypeRowGoneDetected)); n != 1 {
			t.Errorf("%d %s events, want 1: it stayed a candidate throughout", n, events.TypeRowGoneDetected)
		}
	})
}
