package workspaces_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// tree is root → mid → (leaf, leaf2), root → side: three levels.
type tree struct{ root, mid, leaf, leaf2, side workspaces.Workspace }

func (e *env) tree() tree {
	e.t.Helper()
	var t tree
	t.root = e.create("")
	t.mid = e.create(t.root.ID)
	t.leaf = e.create(t.mid.ID)
	t.leaf2 = e.create(t.mid.ID)
	t.side = e.create(t.root.ID)
	return t
}

func (t tree) all() []workspaces.Workspace {
	return []workspaces.Workspace{t.root, t.mid, t.leaf, t.leaf2, t.side}
}

// deleteFailure DELETEs id and expects a 500 naming exactly want (row id →
// instance id).
func (e *env) deleteFailure(id string, want map[string]string) workspaces.DeleteFailure {
	e.t.Helper()
	status, raw := e.do(http.MethodDelete, "/workspaces/"+id, "")
	if status != http.StatusInternalServerError {
		e.t.Fatalf("DELETE: %d %s, want 500", status, raw)
	}
	var fail workspaces.DeleteFailure
	decode(e.t, raw, &fail)
	got := map[string]string{}
	for _, h := range fail.Pending {
		got[h.ID] = h.InstanceID
		if h.Error == "" {
			e.t.Errorf("pending %s has no error", h.ID)
		}
	}
	if len(got) != len(want) {
		e.t.Errorf("pending = %v, want %v", got, want)
	}
	for id, inst := range want {
		if got[id] != inst {
			e.t.Errorf("pending[%s] = %q, want %q", id, got[id], inst)
		}
	}
	if !strings.Contains(fail.Retry, "safe to retry") {
		e.t.Errorf("retry = %q, want it to say the request is safe to retry", fail.Retry)
	}
	return fail
}

func (e *env) deleteOK(id string) {
	e.t.Helper()
	status, raw := e.do(http.MethodDelete, "/workspaces/"+id, "")
	if status != http.StatusNoContent {
		e.t.Fatalf("DELETE: %d %s, want 204", status, raw)
	}
}

func (e *env) assertTerminated(ws ...workspaces.Workspace) {
	e.t.Helper()
	for _, w := range ws {
		if s := e.state(w.InstanceID); s != ec2fake.Terminated && s != ec2fake.ShuttingDown {
			e.t.Errorf("instance %s of %s is %s, want terminated", w.InstanceID, w.ID, s)
		}
	}
}

func (e *env) assertRunning(ws ...workspaces.Workspace) {
	e.t.Helper()
	for _, w := range ws {
		if s := e.state(w.InstanceID); s != ec2fake.Running {
			e.t.Errorf("instance %s of %s is %s, want running", w.InstanceID, w.ID, s)
		}
	}
}

// assertRows checks each row is removed and still holds its instance
// exactly when held says so.
func (e *env) assertRows(held map[string]bool, ws ...workspaces.Workspace) {
	e.t.Helper()
	for _, w := range ws {
		got := e.get(w.ID)
		if got.Status != workspaces.StatusRemoved {
			e.t.Errorf("%s status %q, want removed", w.ID, got.Status)
		}
		want := ""
		if held[w.ID] {
			want = w.InstanceID
		}
		if got.InstanceID != want {
			e.t.Errorf("%s instance_id %q, want %q", w.ID, got.InstanceID, want)
		}
	}
}

func TestDeleteNamesInstancesEC2RefusesThenRedrivesThem(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		tr := e.tree()
		// EC2 fails for two instances of the tree, at two levels.
		e.setProtection(tr.mid.InstanceID, true)
		e.setProtection(tr.leaf2.InstanceID, true)

		e.deleteFailure(tr.root.ID, map[string]string{tr.mid.ID: tr.mid.InstanceID, tr.leaf2.ID: tr.leaf2.InstanceID})
		e.assertTerminated(tr.root, tr.leaf, tr.side)
		e.assertRunning(tr.mid, tr.leaf2)
		e.assertRows(map[string]bool{tr.mid.ID: true, tr.leaf2.ID: true}, tr.all()...)

		// The leak ledger has one durable event per instance given up on.
		leaks := e.events("?type=" + events.TypeRetryExhausted)
		var subjects []string
		for _, ev := range leaks {
			subjects = append(subjects, ev.Subject)
			if ev.Payload["cause"] != "permanent" || ev.Payload["error_code"] != "OperationNotPermitted" {
				t.Errorf("event %s payload %v, want cause permanent, error_code OperationNotPermitted", ev.Subject, ev.Payload)
			}
		}
		slices.Sort(subjects)
		want := []string{tr.mid.ID, tr.leaf2.ID}
		slices.Sort(want)
		if !slices.Equal(subjects, want) {
			t.Errorf("retry_exhausted events about %v, want the workspaces %v", subjects, want)
		}
		if got := e.events("?subject=" + tr.mid.ID); len(got) != 1 || got[0].Payload["instance_id"] != tr.mid.InstanceID {
			t.Errorf("events about %s: %+v, want 1 naming %s", tr.mid.ID, got, tr.mid.InstanceID)
		}

		// The fault clears; the same DELETE now finishes the job.
		e.setProtection(tr.mid.InstanceID, false)
		e.setProtection(tr.leaf2.InstanceID, false)
		e.deleteOK(tr.root.ID)
		e.assertTerminated(tr.all()...)
		e.assertRows(nil, tr.all()...)

		// And once more: nothing held, still 204, never 410.
		e.deleteOK(tr.root.ID)
	})
}

func TestDeleteAfterTransientFaultsIsSafeToRetry(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		tr := e.tree()
		// Every attempt of the DELETE gets a 5xx.
		e.fake.Fail("TerminateInstances", "InternalError", attempts)

		want := map[string]string{}
		for _, w := range tr.all() {
			want[w.ID] = w.InstanceID
		}
		e.deleteFailure(tr.root.ID, want)
		e.assertRunning(tr.all()...)

		leaks := e.events("?type=" + events.TypeRetryExhausted)
		if len(leaks) != len(want) {
			t.Fatalf("retry_exhausted events: %d, want %d", len(leaks), len(want))
		}
		for _, ev := range leaks {
			if ev.Payload["cause"] != "exhausted" || ev.Payload["error_code"] != "InternalError" || ev.Payload["attempts"] != float64(attempts) {
				t.Errorf("event %s payload %v, want cause exhausted, error_code InternalError, attempts %d", ev.Subject, ev.Payload, attempts)
			}
		}

		e.deleteOK(tr.root.ID)
		e.assertTerminated(tr.all()...)
		e.assertRows(nil, tr.all()...)
	})
}

// A DELETE of a subtree that failed, then a DELETE of its ancestor: the
// rows the first removed are re-driven, not skipped.
func TestDeleteRedrivesDescendantsAnEarlierDeleteRemoved(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		tr := e.tree()
		e.setProtection(tr.leaf.InstanceID, true)
		e.deleteFailure(tr.mid.ID, map[string]string{tr.leaf.ID: tr.leaf.InstanceID})
		e.assertTerminated(tr.mid, tr.leaf2)
		e.assertRunning(tr.root, tr.side, tr.leaf)

		e.setProtection(tr.leaf.InstanceID, false)
		e.deleteOK(tr.root.ID)
		e.assertTerminated(tr.all()...)
		e.assertRows(nil, tr.all()...)
	})
}
