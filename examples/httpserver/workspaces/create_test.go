package workspaces_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
)

func TestCreateWritesRowThenLaunchesTaggedInstance(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		root := e.create("")
		if root.Status != workspaces.StatusRunning || root.InstanceID == "" || root.ParentID != "" {
			t.Fatalf("created %+v, want running with an instance and no parent", root)
		}
		// An upper-case parent id is the same id.
		child := e.create(strings.ToUpper(root.ID))
		if child.ParentID != root.ID {
			t.Errorf("child parent_id %q, want %q", child.ParentID, root.ID)
		}
		if got := e.get(child.ID); got.InstanceID != child.InstanceID || got.Status != workspaces.StatusRunning {
			t.Errorf("GET %+v, want it to hold %s and run", got, child.InstanceID)
		}

		ins := e.launch.inputs()
		if len(ins) != 2 {
			t.Fatalf("RunInstances calls: %d, want 2", len(ins))
		}
		for i, ws := range []workspaces.Workspace{root, child} {
			if tok := aws.ToString(ins[i].ClientToken); tok != ws.ID {
				t.Errorf("ClientToken %q, want the row id %q", tok, ws.ID)
			}
			inst, ok := e.fake.Instance(ws.InstanceID)
			if !ok {
				t.Fatalf("instance %s not in EC2", ws.InstanceID)
			}
			want := map[string]string{workspaces.DefaultResourceTag: ws.ID}
			for k, v := range owner {
				want[k] = v
			}
			for k, v := range want {
				if inst.Tags[k] != v {
					t.Errorf("instance %s tag %s = %q, want %q", ws.InstanceID, k, inst.Tags[k], v)
				}
			}
		}
	})
}

// A launch that fails leaves the row removed, not provisioning forever: an
// instance the failed call may have started is then explained by no live
// row, and the sweeper reaps it.
func TestCreateLaunchFailureAbandonsTheRow(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.fake.Fail("RunInstances", "UnauthorizedOperation", 1)
		status, raw := e.do(http.MethodPost, "/workspaces", "")
		if status != http.StatusBadGateway {
			t.Fatalf("POST: %d %s, want 502", status, raw)
		}
		e.mu.Lock()
		id := e.minted[len(e.minted)-1]
		e.mu.Unlock()
		if !strings.Contains(string(raw), id) {
			t.Errorf("body %s does not name the row %s", raw, id)
		}
		if got := e.get(id); got.Status != workspaces.StatusRemoved || got.InstanceID != "" {
			t.Errorf("row after failed launch: %+v, want removed with no instance", got)
		}
	})
}

// Rows.Record refuses a row a DELETE removed while its instance launched,
// so a deleted workspace is never put back to running.
func TestRowsRecordAfterRemoveTree(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ws, err := e.rows.Insert(ctx, workspaces.NewID(), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.RemoveTree(ctx, ws.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rows.Record(ctx, ws.ID, "i-0123456789abcdef0"); !errors.Is(err, workspaces.ErrNotProvisioning) {
			t.Errorf("Record after RemoveTree: %v, want ErrNotProvisioning", err)
		}
		if ok, err := e.rows.Abandon(ctx, ws.ID); ok || err != nil {
			t.Errorf("Abandon of a removed row = %v, %v; want false, nil", ok, err)
		}
		if got, _ := e.rows.Get(ctx, ws.ID); got.Status != workspaces.StatusRemoved || got.InstanceID != "" {
			t.Errorf("row %+v, want removed with no instance", got)
		}
		if _, err := e.rows.Insert(ctx, workspaces.NewID(), ws.ID); !errors.Is(err, workspaces.ErrParentRemoved) {
			t.Errorf("Insert under a removed parent: %v, want ErrParentRemoved", err)
		}
		if _, err := e.rows.Insert(ctx, workspaces.NewID(), workspaces.NewID()); !errors.Is(err, workspaces.ErrNotFound) {
			t.Errorf("Insert under a missing parent: %v, want ErrNotFound", err)
		}

		fresh, err := e.rows.Insert(ctx, workspaces.NewID(), "")
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := e.rows.Abandon(ctx, fresh.ID); !ok || err != nil {
			t.Errorf("Abandon of a provisioning row = %v, %v; want true, nil", ok, err)
		}
		if _, err := e.rows.Get(ctx, workspaces.NewID()); !errors.Is(err, workspaces.ErrNotFound) {
			t.Errorf("Get of a missing row: %v, want ErrNotFound", err)
		}
	})
}

// A DELETE of the parent lands while the child's instance launches: the
// POST must not record the instance on a removed row (which would leave it
// running), and stops it itself.
func TestCreateRacingDeleteStopsTheInstance(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		parent := e.create("")
		e.launch.mu.Lock()
		e.launch.after = func(*ec2.RunInstancesInput) {
			if _, err := e.store.RemoveTree(context.Background(), parent.ID); err != nil {
				t.Error(err)
			}
		}
		e.launch.mu.Unlock()

		status, raw := e.do(http.MethodPost, "/workspaces", `{"parent_id":"`+parent.ID+`"}`)
		if status != http.StatusConflict {
			t.Fatalf("POST: %d %s, want 409", status, raw)
		}
		var body map[string]string
		decode(t, raw, &body)
		if body["instance_id"] == "" || !strings.Contains(body["error"], "terminated") {
			t.Fatalf("body %s, want the instance named and terminated", raw)
		}
		e.assertTerminated(workspaces.Workspace{ID: body["id"], InstanceID: body["instance_id"]})
		if got := e.get(body["id"]); got.Status != workspaces.StatusRemoved || got.InstanceID != "" {
			t.Errorf("child row %+v, want removed with no instance", got)
		}
	})
}

// A record that fails while the database restarts is retried within the
// launch timeout: the workspace is created, not left provisioning with its
// instance running unrecorded.
func TestCreateRetriesTheRecordThroughADatabaseRestart(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.flaky.failRecord(3)
		ws := e.create("")
		if ws.Status != workspaces.StatusRunning || ws.InstanceID == "" {
			t.Fatalf("created %+v, want running with its instance recorded", ws)
		}
		if n := e.flaky.recordCalls(); n != 4 {
			t.Errorf("Record called %d times, want 4 (3 failures, then success)", n)
		}
	})
}

// A record that committed but whose answer was lost is retried, finds its
// row running with this very instance, and the workspace is created: the
// instance is not terminated from under its live row.
func TestCreateWhoseRecordCommittedBeforeItsErrorKeepsTheInstance(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.flaky.loseRecord()
		ws := e.create("")
		if ws.Status != workspaces.StatusRunning || ws.InstanceID == "" {
			t.Fatalf("created %+v, want running with its instance recorded", ws)
		}
		if n := e.flaky.recordCalls(); n != 2 {
			t.Errorf("Record called %d times, want 2 (the lost answer, then the retry)", n)
		}
		e.assertRunning(ws)
	})
}

// A record that never succeeds ends in a 500 that says what became of the
// instance: stopped when the row could be abandoned.
func TestCreateThatCannotRecordSaysWhatHappensNext(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.flaky.failRecord(-1)
		status, raw := e.do(http.MethodPost, "/workspaces", "")
		if status != http.StatusInternalServerError {
			t.Fatalf("POST: %d %s, want 500", status, raw)
		}
		var body map[string]string
		decode(t, raw, &body)
		if body["instance_id"] == "" || !strings.Contains(body["error"], "terminated") {
			t.Fatalf("body %s, want the instance named and said terminated", raw)
		}
		e.assertTerminated(workspaces.Workspace{ID: body["id"], InstanceID: body["instance_id"]})
		if n := e.flaky.recordCalls(); n < 2 {
			t.Errorf("Record called %d times, want it retried", n)
		}
	})
}
