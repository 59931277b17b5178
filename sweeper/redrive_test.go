package sweeper

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestRemovedRowIsReapedInOnePass(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	removed := c.launch(t, 3, ownerValue, "", 0)
	for i, id := range removed {
		h.put(t, "gone-"+string(rune('a'+i)), "removed", id)
	}
	live := liveRows(t, h, c, "ws-", 1)
	sw := newSweeper(t, h.st, c.ec2, WithEvents(sink))

	rep, err := sw.SweepOnce(t.Context())
	if err != nil {
		t.Fatalf("SweepOnce: %v", err)
	}
	if rep.Pending != 3 || rep.Reaped != 3 || rep.Failed != 0 {
		t.Errorf("report = %+v, want 3 pending, 3 reaped", rep)
	}
	if got := c.terminated(t); !slices.Equal(got, sorted(removed)) {
		t.Errorf("terminated %v, want %v (not the live %v)", got, sorted(removed), live)
	}
	for _, id := range []string{"gone-a", "gone-b", "gone-c"} {
		if inst := h.instanceOf(t, id); inst != "" {
			t.Errorf("%s still holds %s after the pass", id, inst)
		}
	}
	if n := c.terminateCalls(); n != 1 {
		t.Errorf("TerminateInstances called %d times, want 1 (one batch)", n)
	}
	if got := subjects(sink, events.TypeReaped); !slices.Equal(got, []string{"gone-a", "gone-b", "gone-c"}) {
		t.Errorf("%s subjects = %v", events.TypeReaped, got)
	}
}

// An instance EC2 does not know and does not list (never existed, or long
// since purged) keeps its row until the answer has held for the settle
// window, then is reaped and never tried again.
func TestNotFoundIsReapedOnceItHasSettled(t *testing.T) {
	for _, settle := range []time.Duration{0, 500 * time.Millisecond} {
		t.Run("settle "+settle.String(), func(t *testing.T) {
			h, c := newHostDB(t), newFakeCloud(t)
			h.put(t, "gone", "removed", "i-0123456789abcdef0")
			sw := newSweeper(t, h.st, c.ec2, WithNotFoundSettle(settle), WithRowBackoff(10*time.Millisecond, 100*time.Millisecond),
				WithRetry(teardown.WithMaxAttempts(1)))

			rep := sweep(t, sw)
			if settle > 0 {
				if rep.Reaped != 0 || rep.Failed != 1 || h.instanceOf(t, "gone") == "" {
					t.Fatalf("first pass = %+v, want the row kept: one NotFound is not yet gone", rep)
				}
				time.Sleep(settle + 100*time.Millisecond)
				rep = sweep(t, sw)
			}
			if rep.Reaped != 1 {
				t.Errorf("report = %+v, want the missing instance reaped once the answer settled", rep)
			}
			if inst := h.instanceOf(t, "gone"); inst != "" {
				t.Errorf("row still holds %s", inst)
			}
			calls := c.terminateCalls()
			for range 3 {
				if rep, _ := sw.SweepOnce(t.Context()); rep.Pending != 0 {
					t.Errorf("a later pass found %d pending, want 0", rep.Pending)
				}
			}
			if n := c.terminateCalls(); n != calls {
				t.Errorf("TerminateInstances called %d more times after the row was reaped", n-calls)
			}
		})
	}
}

// attemptsOn returns the distinct times at which TerminateInstances calls
// naming id arrived: one per pass that tried it, however many calls the
// client needed to isolate it from its batch.
func attemptsOn(fake *ec2fake.Server, id string, start time.Time) []time.Duration {
	var out []time.Duration
	for _, r := range fake.Requests() {
		if r.Action == "TerminateInstances" && slices.Contains(r.InstanceIDs, id) {
			out = append(out, r.At.Sub(start))
		}
	}
	return slices.Compact(out)
}

func TestProtectedInstanceIsAttemptedOncePerBackoffStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newInProcessCloud(t)
		fake := c.fake
		mem := store.NewMemory(table)
		ids := c.launch(t, 2, ownerValue, "", 0)
		fake.Protect(ids[0])
		mem.Put(store.Row{ID: "protected", Status: "removed", InstanceID: ids[0]})
		mem.Put(store.Row{ID: "plain", Status: "removed", InstanceID: ids[1]})
		sink := events.NewMemory()
		sw := newSweeper(t, mem, c.ec2, WithEvents(sink))

		start := time.Now()
		for time.Since(start) < 150*time.Minute {
			if _, err := sw.SweepOnce(t.Context()); err != nil {
				t.Fatalf("SweepOnce: %v", err)
			}
			time.Sleep(time.Minute)
		}
		// OperationNotPermitted is permanent: one call, then the row waits
		// the maximum backoff (1h) each time, not one pass (1m).
		if got, want := attemptsOn(fake, ids[0], start), []time.Duration{0, time.Hour, 2 * time.Hour}; !slices.Equal(got, want) {
			t.Errorf("TerminateInstances naming the protected instance at %v, want %v", got, want)
		}
		if st, _ := fake.Instance(ids[1]); st.State != ec2fake.Terminated {
			t.Errorf("the unprotected instance is %s, want terminated", st.State)
		}
		failed := ofType(sink, events.TypeReapFailed)
		if len(failed) != 3 {
			t.Fatalf("%d %s events, want 3", len(failed), events.TypeReapFailed)
		}
		for _, e := range failed {
			if e.Subject != "protected" || e.Payload["error_code"] != "OperationNotPermitted" || e.Payload["permanent"] != true {
				t.Errorf("event = %+v, want subject protected, error_code OperationNotPermitted, permanent", e)
			}
		}
	})
}

func TestProtectedInstanceWaitsOnPostgres(t *testing.T) {
	h, c, sink := newHostDB(t), newFakeCloud(t), events.NewMemory()
	ids := c.launch(t, 1, ownerValue, "", 0)
	c.fake.Protect(ids[0])
	h.put(t, "protected", "removed", ids[0])
	sw := newSweeper(t, h.st, c.ec2, WithEvents(sink))

	reps := passes(t, sw, 3)
	if reps[0].Failed != 1 || reps[1].Pending != 0 || reps[2].Pending != 0 {
		t.Errorf("reports = %+v, want one failure, then the row hidden by its backoff", reps)
	}
	if n := c.terminateCalls(); n != 1 {
		t.Errorf("TerminateInstances called %d times in three passes, want 1", n)
	}
	if inst := h.instanceOf(t, "protected"); inst != ids[0] {
		t.Errorf("row holds %q, want %s kept until it can be stopped", inst, ids[0])
	}
	failed := ofType(sink, events.TypeReapFailed)
	if len(failed) != 1 || failed[0].Payload["error_code"] != "OperationNotPermitted" {
		t.Errorf("%s events = %+v, want one with error_code OperationNotPermitted", events.TypeReapFailed, failed)
	}
}

// A stop that is accepted and not finished (an instance terminated, its
// volume still attached while it shuts down) is no failure: the row keeps
// its instance without a reap_failed event, is due again after the base
// backoff however often it was pending, and is cleared once the volume is
// deleted.
func TestPendingStopIsRedrivenAtTheBaseBackoffWithoutAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newInProcessCloud(t, ec2fake.WithDetachDelay(5*time.Minute))
		deps, err := awsec2.New(c.api, awsec2.WithOwner(map[string]string{ownerKey: ownerValue}), awsec2.WithDependents())
		if err != nil {
			t.Fatal(err)
		}
		id := c.launch(t, 1, ownerValue, "ws-1", 0)[0]
		vol := c.fake.AddVolume(ec2fake.Volume{InstanceID: id, Tags: map[string]string{ownerKey: ownerValue}})
		mem := store.NewMemory(table)
		mem.Put(store.Row{ID: "ws-1", Status: "removed", InstanceID: id})
		sink := events.NewMemory()
		sw := newSweeper(t, mem, deps, WithEvents(sink), WithRowBackoff(time.Minute, time.Hour))

		start := time.Now()
		unfinished := 0
		for time.Since(start) < 10*time.Minute {
			rep, err := sw.SweepOnce(t.Context())
			if err != nil {
				t.Fatalf("SweepOnce: %v", err)
			}
			unfinished += rep.Unfinished
			if rep.Failed != 0 {
				t.Errorf("pass at %v: %d failed, want none: a pending stop is not a failure", time.Since(start), rep.Failed)
			}
			if rep.Reaped == 1 {
				break
			}
			time.Sleep(time.Minute)
		}
		took := time.Since(start)
		if row, _ := mem.Get("ws-1"); row.InstanceID != "" {
			t.Fatalf("after %v the row still holds %s, want it cleared once %s was deleted", took, id, vol)
		}
		// Due every minute: the detach delay (5m) and at most one pass more.
		if unfinished < 5 || took > 6*time.Minute {
			t.Errorf("%d passes pending, cleared after %v; want at least 5, within 6m: the base backoff, not a growing one", unfinished, took)
		}
		if n := len(ofType(sink, events.TypeReapFailed)); n != 0 {
			t.Errorf("%d %s events, want none", n, events.TypeReapFailed)
		}
		if n := len(c.fake.Volumes()); n != 0 {
			t.Errorf("%d volumes left, want 0", n)
		}
	})
}
