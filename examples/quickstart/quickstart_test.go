package quickstart_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"go.uber.org/goleak"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/examples/quickstart"
	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/leaklesstest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The quickstart's handler and sweeper, on PostgreSQL and a fake EC2: a
// DELETE that succeeds, one that EC2 fails throughout (500, a durable
// event), and the sweeper finishing it.
func TestQuickstart(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	if _, err := db.Pool.Exec(ctx, workspaces.Schema); err != nil {
		t.Fatal(err)
	}
	fake := ec2fake.New()
	defer fake.Close()
	svc, err := quickstart.New(ctx, db.Pool, ec2.NewFromConfig(mototest.Config(fake.URL(), fake.Client())))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /workspaces/{id}", svc.DeleteWorkspace)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	workspace := func() (id, instanceID string) {
		id = workspaces.NewID()
		instanceID = fake.Launch(ec2fake.Instance{Tags: map[string]string{
			"team": quickstart.Owner["team"], workspaces.DefaultResourceTag: id,
		}})
		if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id) VALUES ($1, 'running', $2)`, id, instanceID); err != nil {
			t.Fatal(err)
		}
		return id, instanceID
	}
	remove := func(id string) int {
		req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/workspaces/"+id, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	held := func(id string) string {
		var inst *string
		if err := db.Pool.QueryRow(ctx, `SELECT instance_id FROM workspaces WHERE id = $1`, id).Scan(&inst); err != nil {
			t.Fatal(err)
		}
		if inst == nil {
			return ""
		}
		return *inst
	}
	state := func(id string) string { inst, _ := fake.Instance(id); return inst.State }

	ok, okInst := workspace()
	if got := remove(ok); got != http.StatusNoContent {
		t.Fatalf("DELETE: %d, want 204", got)
	}
	if state(okInst) != ec2fake.Terminated || held(ok) != "" {
		t.Errorf("after 204: instance %s, row holds %q; want terminated and cleared", state(okInst), held(ok))
	}
	if got := remove(workspaces.NewID()); got != http.StatusNotFound {
		t.Errorf("DELETE of an unknown id: %d, want 404", got)
	}

	bad, badInst := workspace()
	fake.Fail("TerminateInstances", "InternalError", 5)
	if got := remove(bad); got != http.StatusInternalServerError {
		t.Fatalf("DELETE with EC2 failing: %d, want 500", got)
	}
	if state(badInst) != ec2fake.Running || held(bad) != badInst {
		t.Fatalf("after 500: instance %s, row holds %q; want running and still held", state(badInst), held(bad))
	}
	sink, err := events.NewPgx(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	leaks, err := sink.List(ctx, events.Filter{Type: events.TypeRetryExhausted})
	if err != nil {
		t.Fatal(err)
	}
	if len(leaks) != 1 || leaks[0].Subject != bad || leaks[0].Payload["instance_id"] != badInst || fmt.Sprint(leaks[0].Payload["attempts"]) != "5" {
		t.Fatalf("retry_exhausted events %+v, want one about workspace %s (instance %s) with 5 attempts", leaks, bad, badInst)
	}

	// The DELETE told the store it was stopping the instance, so the
	// sweeper leaves the row alone for the redrive grace...
	sw0, err := svc.Sweeper(sweeper.WithPassTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := sw0.SweepOnce(ctx); err != nil || rep.Pending != 0 {
		t.Fatalf("sweep during the grace: %+v, %v; want the row left to the DELETE", rep, err)
	}
	// ...which has passed two minutes later.
	if _, err := db.Pool.Exec(ctx, `UPDATE leakless_attempts SET next_at = now() WHERE resource_id = $1`, bad); err != nil {
		t.Fatal(err)
	}

	sw, err := svc.Sweeper(sweeper.WithPassTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sw.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reaped != 1 || state(badInst) != ec2fake.Terminated || held(bad) != "" {
		t.Errorf("sweep reaped %d; instance %s, row holds %q; want 1, terminated, cleared", rep.Reaped, state(badInst), held(bad))
	}

	// The invariant a host checks in its own tests: every owned instance
	// explained, no removed row holding one.
	st, err := store.NewPgx(db.Pool, workspaces.Table)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := awsec2.New(ec2.NewFromConfig(mototest.Config(fake.URL(), fake.Client())), awsec2.WithOwner(quickstart.Owner))
	if err != nil {
		t.Fatal(err)
	}
	leaklesstest.RequireNoLeaks(t, st, inv)
}
