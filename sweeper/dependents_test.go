package sweeper

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// leftovers gives the fake cloud one of each dependent kind whose
// resource-id tag is rid and whose owner tag's value is owner: an
// available volume, an unassociated Elastic IP, an available interface,
// and a persistent spot request whose instance is gone.
func leftovers(t *testing.T, c *cloud, owner, rid string) {
	t.Helper()
	tags := map[string]string{ownerKey: owner, DefaultResourceTag: rid}
	c.fake.AddVolume(ec2fake.Volume{Tags: tags, CreateTime: time.Now().Add(-old)})
	c.fake.AddAddress(ec2fake.Address{Tags: tags})
	c.fake.AddNetworkInterface(ec2fake.NetworkInterface{Tags: tags})
	// A persistent request whose instance was terminated without it is
	// open again, waiting to launch a replacement (the cloud's detach
	// delay holds it open for the test).
	_, id := c.fake.RequestSpot(ec2fake.SpotRequest{Type: ec2fake.SpotPersistent, Tags: tags})
	if err := c.ec2.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

// newDepsCloud is a fake cloud whose persistent spot requests wait an
// hour before relaunching.
func newDepsCloud(t *testing.T) *cloud { return newFakeCloud(t, ec2fake.WithDetachDelay(time.Hour)) }

// remaining counts what the fake still holds of each kind, not counting
// the instances' own primary interfaces and root volumes.
func remaining(c *cloud) (vols, addrs, enis, spots int) {
	for _, v := range c.fake.Volumes() {
		if v.InstanceID == "" {
			vols++
		}
	}
	addrs = len(c.fake.Addresses())
	for _, n := range c.fake.NetworkInterfaces() {
		if n.InstanceID == "" {
			enis++
		}
	}
	for _, r := range c.fake.SpotRequests() {
		if r.State == ec2fake.SpotOpen || r.State == ec2fake.SpotActive {
			spots++
		}
	}
	return vols, addrs, enis, spots
}

func depsSweeper(t *testing.T, st store.Store, c *cloud, sink *events.Memory, cfg Dependents, opts ...Option) *Sweeper {
	t.Helper()
	if cfg.MinAge == 0 {
		cfg.MinAge = time.Nanosecond // the interfaces and addresses' age counts from the first pass
	}
	if cfg.MaxFraction == 0 {
		cfg.MaxFraction = 1 // the tests' clouds hold few dependents, all of them leftovers
	}
	return newSweeper(t, st, c.ec2, append([]Option{WithEvents(sink), WithDependents(c.ec2, cfg)}, opts...)...)
}

func TestDependentsOfARemovedRowAreReapedAfterConfirmation(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed"})
	leftovers(t, c, ownerValue, "ws-1")
	sink := events.NewMemory()
	sw := depsSweeper(t, st, c, sink, Dependents{})

	passes(t, sw, 1)
	if v, a, e, s := remaining(c); v+a+e+s != 4 {
		t.Fatalf("after one pass %d volumes, %d addresses, %d interfaces, %d spot requests left, want one of each: ConfirmPasses is 2", v, a, e, s)
	}
	passes(t, sw, 1)
	if n := len(ofType(sink, events.TypeDependentDetected)); n != 4 {
		t.Fatalf("%d detected events, want 4", n)
	}
	if v, a, e, s := remaining(c); v+a+e+s != 0 {
		t.Fatalf("after two passes %d volumes, %d addresses, %d interfaces, %d spot requests left, want none", v, a, e, s)
	}
	reaped := ofType(sink, events.TypeDependentReaped)
	var kinds []string
	for _, e := range reaped {
		kinds = append(kinds, e.Payload["kind"].(string))
		if e.Subject != "ws-1" || e.Payload["reason"] != ReasonDependentRowRemoved {
			t.Errorf("reaped event %+v, want subject ws-1, reason row_removed", e)
		}
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{"address", "interface", "spot_request", "volume"}) {
		t.Fatalf("reaped kinds %v", kinds)
	}
}

func TestDependentsOfLiveRowsAndOtherOwnersAreNeverTouched(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "provisioning", Status: "creating"})
	st.Put(store.Row{ID: "running", Status: "running", InstanceID: c.launch(t, 1, ownerValue, "running", old)[0]})
	st.Put(store.Row{ID: "gone", Status: "removed"})
	leftovers(t, c, ownerValue, "provisioning")
	leftovers(t, c, ownerValue, "running")
	leftovers(t, c, otherValue, "gone")
	kept := map[string]string{ownerKey: ownerValue, DefaultResourceTag: "gone", DefaultKeepTag: ""}
	c.fake.AddVolume(ec2fake.Volume{Tags: kept})
	v0, a0, e0, s0 := remaining(c)
	sink := events.NewMemory()
	sw := depsSweeper(t, st, c, sink, Dependents{MaxFraction: 1})
	passes(t, sw, 3)
	if v, a, e, s := remaining(c); v != v0 || a != a0 || e != e0 || s != s0 {
		t.Fatalf("left %d/%d/%d/%d of %d/%d/%d/%d: a live row's, another owner's or a kept dependent was reaped", v, a, e, s, v0, a0, e0, s0)
	}
	if n := len(ofType(sink, events.TypeDependentDetected)); n != 0 {
		t.Fatalf("%d detected events, want none", n)
	}
}

func TestDependentsOfAMissingRowAreReaped(t *testing.T) {
	c := newDepsCloud(t)
	leftovers(t, c, ownerValue, "never-recorded")
	sink := events.NewMemory()
	sw := depsSweeper(t, store.NewMemory(table), c, sink, Dependents{})
	passes(t, sw, 2)
	if v, a, e, s := remaining(c); v+a+e+s != 0 {
		t.Fatalf("%d/%d/%d/%d left, want none", v, a, e, s)
	}
	for _, e := range ofType(sink, events.TypeDependentReaped) {
		if e.Payload["reason"] != ReasonDependentRowMissing {
			t.Fatalf("reason %v, want row_missing", e.Payload["reason"])
		}
	}
}

func TestDependentsBreakerTripReapsNothing(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed"})
	leftovers(t, c, ownerValue, "ws-1")
	sink := events.NewMemory()
	sw := depsSweeper(t, st, c, sink, Dependents{MaxPerPass: 3})
	passes(t, sw, 3)
	if v, a, e, s := remaining(c); v+a+e+s != 4 {
		t.Fatalf("%d/%d/%d/%d left, want all 4: the breaker tripped", v, a, e, s)
	}
	ab := ofType(sink, events.TypeDependentsAborted)
	if len(ab) == 0 || ab[len(ab)-1].Payload["reason"] != AbortMaxPerPass {
		t.Fatalf("aborted events %+v, want max_per_pass", ab)
	}
	for _, action := range []string{"DeleteVolume", "ReleaseAddress", "DeleteNetworkInterface", "CancelSpotInstanceRequests"} {
		if n := c.fake.Calls(action); n != 0 {
			t.Errorf("%d %s calls", n, action)
		}
	}
}

func TestDependentsShareBreakerTripReapsNothing(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed"})
	leftovers(t, c, ownerValue, "ws-1")
	sink := events.NewMemory()
	sw := depsSweeper(t, st, c, sink, Dependents{MaxFraction: 0.5})
	passes(t, sw, 3)
	if v, a, e, s := remaining(c); v+a+e+s != 4 {
		t.Fatalf("%d/%d/%d/%d left, want all 4: every owned dependent a candidate trips the share breaker", v, a, e, s)
	}
	if ab := ofType(sink, events.TypeDependentsAborted); len(ab) == 0 || ab[len(ab)-1].Payload["reason"] != AbortMaxFraction {
		t.Fatalf("aborted events %+v, want max_fraction", ab)
	}
}

func TestDependentsDryRunReapsNothing(t *testing.T) {
	for name, opts := range map[string]struct {
		cfg  Dependents
		more []Option
	}{
		"Dependents.DryRun": {cfg: Dependents{DryRun: true}},
		"WithDryRun":        {more: []Option{WithDryRun()}},
	} {
		t.Run(name, func(t *testing.T) {
			c := newDepsCloud(t)
			st := store.NewMemory(table)
			st.Put(store.Row{ID: "ws-1", Status: "removed"})
			leftovers(t, c, ownerValue, "ws-1")
			sink := events.NewMemory()
			sw := depsSweeper(t, st, c, sink, opts.cfg, opts.more...)
			passes(t, sw, 3)
			if v, a, e, s := remaining(c); v+a+e+s != 4 {
				t.Fatalf("%d/%d/%d/%d left, want all 4", v, a, e, s)
			}
			if n := len(ofType(sink, events.TypeDependentDryRun)); n < 4 {
				t.Fatalf("%d dry-run events, want one per dependent and pass once confirmed", n)
			}
		})
	}
}

// failingKnown is a store whose Known fails.
type failingKnown struct{ store.Store }

func (failingKnown) Known(context.Context, []string, []string) (store.Known, error) {
	return store.Known{}, errors.New("connection refused")
}

func TestDependentsFailClosedOnAStoreError(t *testing.T) {
	c := newDepsCloud(t)
	mem := store.NewMemory(table)
	mem.Put(store.Row{ID: "ws-1", Status: "removed"})
	leftovers(t, c, ownerValue, "ws-1")
	sink := events.NewMemory()
	sw := depsSweeper(t, failingKnown{mem}, c, sink, Dependents{})
	for range 3 {
		if _, err := sw.SweepOnce(t.Context()); err == nil {
			t.Fatal("pass with an unreachable store: no error")
		}
	}
	if v, a, e, s := remaining(c); v+a+e+s != 4 {
		t.Fatalf("%d/%d/%d/%d left, want all 4", v, a, e, s)
	}
	if ab := ofType(sink, events.TypeDependentsAborted); len(ab) != 3 || ab[0].Payload["reason"] != AbortStore {
		t.Fatalf("aborted events %+v, want 3 store_error", ab)
	}
}

func TestDependentReapFailureIsRecordedAndBackedOff(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed"})
	c.fake.AddVolume(ec2fake.Volume{Tags: map[string]string{ownerKey: ownerValue, DefaultResourceTag: "ws-1"}})
	c.fake.Fail("DeleteVolume", "UnauthorizedOperation", 1)
	sink := events.NewMemory()
	sw := depsSweeper(t, st, c, sink, Dependents{})
	passes(t, sw, 4)
	failed := ofType(sink, events.TypeDependentReapFailed)
	if len(failed) != 1 || failed[0].Payload["permanent"] != true || failed[0].Payload["error_code"] != "UnauthorizedOperation" {
		t.Fatalf("failed events %+v, want one permanent UnauthorizedOperation", failed)
	}
	if n := c.fake.Calls("DeleteVolume"); n != 1 {
		t.Fatalf("%d DeleteVolume calls over 4 passes, want 1: a permanent failure waits the row backoff", n)
	}
}

func TestWithDependentsValidates(t *testing.T) {
	c := newDepsCloud(t)
	for name, opt := range map[string]Option{
		"nil inventory":  WithDependents(nil, Dependents{}),
		"negative age":   WithDependents(c.ec2, Dependents{MinAge: -time.Second}),
		"fraction above": WithDependents(c.ec2, Dependents{MaxFraction: 2}),
	} {
		if _, err := New(store.NewMemory(table), c.ec2, opt); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

var _ DependentInventory = (*awsec2.Client)(nil)

func TestDependentsInUseCountForTheShareBreaker(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed"})
	leftover := c.fake.AddVolume(ec2fake.Volume{Tags: map[string]string{ownerKey: ownerValue, DefaultResourceTag: "ws-1"}})
	for i := range 3 { // live workspaces' volumes, attached: in use, never candidates
		rid := "live-" + string(rune('a'+i))
		id := c.launch(t, 1, ownerValue, rid, old)[0]
		st.Put(store.Row{ID: rid, Status: "running", InstanceID: id})
		c.fake.AddVolume(ec2fake.Volume{InstanceID: id, Tags: map[string]string{ownerKey: ownerValue, DefaultResourceTag: "ws-1"}})
	}
	sink := events.NewMemory()
	sw := depsSweeper(t, st, c, sink, Dependents{MaxFraction: 0.5})
	passes(t, sw, 2)
	for _, v := range c.fake.Volumes() {
		if v.ID == leftover {
			t.Fatalf("the removed row's volume is still there: 1 candidate of 4 owned volumes must not trip the share breaker")
		}
	}
	if n := len(c.fake.Volumes()); n != 3 {
		t.Fatalf("%d volumes left, want the 3 attached ones", n)
	}
}

// A pass with both inventory steps lists the owned instances once: the
// dependents step judges by the row-gone step's listing, taken after the
// dependents were listed and before either step read the store.
func TestAPassListsTheInstancesOnce(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed"})
	leftovers(t, c, ownerValue, "ws-1")
	live := c.launch(t, 1, ownerValue, "ws-live", old)[0]
	st.Put(store.Row{ID: "ws-live", Status: "running", InstanceID: live})
	sink := events.NewMemory()
	sw := depsSweeper(t, st, c, sink, Dependents{}, WithRowGone(c.ec2, RowGone{MaxFraction: 1}))
	before := c.fake.Calls("DescribeInstances")
	passes(t, sw, 1)
	// One listing, and one look at the spot request's instance.
	if n := c.fake.Calls("DescribeInstances") - before; n != 2 {
		t.Errorf("one pass made %d DescribeInstances calls, want 2: the instances listed once for both steps, the spot request's instance described once", n)
	}
	passes(t, sw, 1)
	if v, a, e, s := remaining(c); v+a+e+s != 0 {
		t.Errorf("%d/%d/%d/%d left after two passes, want none", v, a, e, s)
	}
}

// A removed row that still holds its instance is the re-drive's: its
// stop finishes what the instance owned, so the dependents sweep leaves
// its dependents alone, however many passes they wait.
func TestDependentsOfARowStillBeingStoppedAreLeftToTheRedrive(t *testing.T) {
	c := newDepsCloud(t)
	id := c.launch(t, 1, ownerValue, "ws-1", old)[0]
	if err := c.ec2.Stop(t.Context(), id); err != nil { // terminated: no live instance protects the row's dependents
		t.Fatal(err)
	}
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed", InstanceID: id})
	leftovers(t, c, ownerValue, "ws-1")
	v0, a0, e0, s0 := remaining(c)
	sink := events.NewMemory()
	// The re-drive's stops keep failing, so the row keeps holding it.
	failing := teardown.StopperFunc(func(context.Context, string) error { return errors.New("RequestLimitExceeded") })
	sw := newSweeper(t, st, failing, WithEvents(sink), WithRowBackoff(time.Nanosecond, time.Nanosecond), WithRetry(teardown.WithMaxAttempts(1)),
		WithDependents(c.ec2, Dependents{MinAge: time.Nanosecond, MaxFraction: 1}))
	passes(t, sw, 3)
	if v, a, e, s := remaining(c); v != v0 || a != a0 || e != e0 || s != s0 {
		t.Fatalf("left %d/%d/%d/%d of %d/%d/%d/%d: the dependents of a row still being stopped were reaped", v, a, e, s, v0, a0, e0, s0)
	}
	if n := len(ofType(sink, events.TypeDependentDetected)); n != 0 {
		t.Fatalf("%d detected events, want none", n)
	}
	if n := len(ofType(sink, events.TypeReapFailed)); n == 0 {
		t.Fatal("no reap_failed event: the re-drive did not try the row")
	}
}

// A row-gone instance whose stop is pending (terminated, its volume not
// yet freed) counts as terminated, not as a failure: no row keeps its
// dependents, so the dependents step reaps them once they are free.
func TestRowGoneTerminationWithDependentsPendingCountsAsTerminated(t *testing.T) {
	c := newFakeCloud(t, ec2fake.WithDetachDelay(time.Hour))
	deps, err := awsec2.New(c.api, awsec2.WithOwner(map[string]string{ownerKey: ownerValue}), awsec2.WithDependents())
	if err != nil {
		t.Fatal(err)
	}
	id := c.launch(t, 1, ownerValue, "never-recorded", old)[0]
	c.fake.AddVolume(ec2fake.Volume{InstanceID: id, Tags: map[string]string{ownerKey: ownerValue, DefaultResourceTag: "never-recorded"}})
	sink := events.NewMemory()
	sw := newSweeper(t, store.NewMemory(table), deps, WithEvents(sink), WithRowGone(deps, RowGone{MaxFraction: 1}))
	var terminated int
	for range 2 {
		rep, err := sw.SweepOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		terminated += rep.RowGoneTerminated
	}
	if in, _ := c.fake.Instance(id); terminated != 1 || in.State != ec2fake.Terminated {
		t.Errorf("%d row-gone terminated, instance %s; want 1, terminated", terminated, in.State)
	}
	if n := len(ofType(sink, events.TypeReapFailed)); n != 0 {
		t.Errorf("%d %s events, want none: a pending stop is no failure", n, events.TypeReapFailed)
	}
}

// The pass's report counts the dependents step: candidates seen, those
// reaped, and why a step reaped nothing.
func TestReportCountsTheDependentsStep(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed"})
	leftovers(t, c, ownerValue, "ws-1")
	sw := depsSweeper(t, st, c, events.NewMemory(), Dependents{})
	var reps []Report
	for range 2 {
		rep, err := sw.SweepOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	// The interface and the address have no creation time: their age
	// counts from the first pass that sees them.
	if reps[0].DependentsSeen != 2 || reps[0].DependentsReaped != 0 || reps[1].DependentsSeen != 4 || reps[1].DependentsReaped != 4 {
		t.Errorf("reports %+v, want 2 seen (the volume and the spot request), then 4 seen and reaped (ConfirmPasses 2)", reps)
	}

	leftovers(t, c, ownerValue, "ws-1")
	tripped := depsSweeper(t, st, c, events.NewMemory(), Dependents{MaxFraction: 0.5})
	passes(t, tripped, 1)
	if rep, _ := tripped.SweepOnce(t.Context()); rep.DependentsAborted != AbortMaxFraction || rep.DependentsReaped != 0 {
		t.Errorf("report %+v, want the dependents step aborted by %s", rep, AbortMaxFraction)
	}
}

// A removed row whose stop failed for good (an instance IAM will not let
// us terminate) is no longer the re-drive's to finish: a leftover tagged
// with it is reaped by the dependents sweep.
func TestDependentsOfARowWhoseStopFailedForGoodAreReaped(t *testing.T) {
	c := newDepsCloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "ws-1", Status: "removed", InstanceID: "i-0000000000000beef"}) // not ours to list: no owner tag
	vol := c.fake.AddVolume(ec2fake.Volume{Tags: map[string]string{ownerKey: ownerValue, DefaultResourceTag: "ws-1"}, CreateTime: time.Now().Add(-old)})
	refused := teardown.StopperFunc(func(context.Context, string) error {
		return teardown.Permanent(errors.New("UnauthorizedOperation"))
	})
	sink := events.NewMemory()
	sw := newSweeper(t, st, refused, WithEvents(sink), WithRetry(teardown.WithMaxAttempts(1)),
		WithDependents(c.ec2, Dependents{MinAge: time.Nanosecond, MaxFraction: 1}))
	passes(t, sw, 3)
	if slices.ContainsFunc(c.fake.Volumes(), func(v ec2fake.Volume) bool { return v.ID == vol }) {
		t.Fatalf("%s left: the leftover of a row whose stop failed for good was never reaped", vol)
	}
	if n := len(ofType(sink, events.TypeDependentReaped)); n != 1 {
		t.Errorf("%d %s events, want 1", n, events.TypeDependentReaped)
	}
}
