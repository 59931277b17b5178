package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/examples/internal/backend"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

var owner = map[string]string{"leakless:owner": "worker-test"}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testBackends opens a database (with no redrive grace: its removed rows
// stand for DELETEs that gave up long ago) and an embedded EC2, closed when
// the test ends.
func testBackends(t *testing.T) (*backend.Database, *backend.EC2) {
	t.Helper()
	ctx := context.Background()
	db, err := backend.OpenDatabase(ctx, backend.DatabaseOptions{URL: pgtest.Open(t).URL, Store: []store.Option{store.WithRedriveGrace(0)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(ctx) })
	cloud, err := backend.OpenEC2(ctx, "", owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cloud.Close)
	return db, cloud
}

// tags are the tags the API puts on resourceID's instance.
func tags(resourceID string) map[string]string {
	return map[string]string{"leakless:owner": owner["leakless:owner"], workspaces.DefaultResourceTag: resourceID}
}

// removedHolding inserts a workspace, launches and records its instance
// (launched age ago), and marks the row removed with remove.
func removedHolding(t *testing.T, db *backend.Database, cloud *backend.EC2, remove func(id string) error) (string, string) {
	t.Helper()
	ctx := context.Background()
	ws, err := db.Rows.Insert(ctx, workspaces.NewID(), "")
	if err != nil {
		t.Fatal(err)
	}
	inst := cloud.Fake.Launch(ec2fake.Instance{Tags: tags(ws.ID)})
	if _, err := db.Rows.Record(ctx, ws.ID, inst); err != nil {
		t.Fatal(err)
	}
	if err := remove(ws.ID); err != nil {
		t.Fatal(err)
	}
	return ws.ID, inst
}

func TestWorkerTakesTheLeaseReapsAndShutsDown(t *testing.T) {
	ctx := context.Background()
	db, cloud := testBackends(t)
	// A removed workspace still holding its instance: a DELETE that failed.
	removedID, removedInst := removedHolding(t, db, cloud, func(id string) error {
		_, err := db.Store.RemoveTree(ctx, id)
		return err
	})
	// A live workspace, and an hour-old instance whose row never existed.
	live, err := db.Rows.Insert(ctx, workspaces.NewID(), "")
	if err != nil {
		t.Fatal(err)
	}
	liveInst := cloud.Fake.Launch(ec2fake.Instance{Tags: tags(live.ID), LaunchTime: time.Now().Add(-time.Hour)})
	if _, err := db.Rows.Record(ctx, live.ID, liveInst); err != nil {
		t.Fatal(err)
	}
	orphan := cloud.Fake.Launch(ec2fake.Instance{Tags: tags(workspaces.NewID()), LaunchTime: time.Now().Add(-time.Hour)})

	const passTimeout = 2 * time.Second
	cfg := config{
		addr: "127.0.0.1:0", rowGone: true, minAge: time.Minute,
		interval: 50 * time.Millisecond, passTimeout: passTimeout, leaseTTL: 3 * time.Second,
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	addr := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- serve(runCtx, cfg, db, cloud, nil, log, func(a string) { addr <- a }) }()
	base := "http://" + <-addr

	terminated := func(id string) bool {
		inst, _ := cloud.Fake.Instance(id)
		return inst.State == ec2fake.Terminated || inst.State == ec2fake.ShuttingDown
	}
	waitFor(t, 10*time.Second, "the removed workspace's instance is not terminated", func() bool { return terminated(removedInst) })
	waitFor(t, 10*time.Second, "the row-gone instance is not terminated", func() bool { return terminated(orphan) })
	if terminated(liveInst) {
		t.Fatalf("the live workspace's instance %s was terminated", liveInst)
	}
	waitFor(t, 10*time.Second, "the removed row still holds its instance", func() bool {
		ws, err := db.Rows.Get(ctx, removedID)
		return err == nil && ws.InstanceID == ""
	})

	// The worker holds the lease: a rival cannot take it.
	rival := db.Postgres.Lease(LeaseName, time.Second)
	if ok, err := rival.Lead(ctx); ok || err != nil {
		t.Fatalf("rival Lead = %v, %v while the worker runs; want false, nil", ok, err)
	}
	if status, body := get(t, base+"/healthz"); status != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q, want 200 ok", status, body)
	}
	// An instance is terminated before the pass that terminated it records
	// its metrics, so the scrape waits for the pass to finish.
	var metrics string
	waitFor(t, 10*time.Second, "/metrics does not show the reaps", func() bool {
		var status int
		status, metrics = get(t, base+"/metrics")
		return status == http.StatusOK && strings.Contains(metrics, "leakless_sweeper_row_gone_terminated")
	})
	for _, name := range []string{"leakless_sweeper_reaped", "leakless_sweeper_row_gone_terminated", "leakless_sweeper_leader"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics has no %s:\n%s", name, metrics)
		}
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(passTimeout + 5*time.Second):
		t.Fatal("serve did not return after cancellation")
	}
	if d := time.Since(start); d > passTimeout {
		t.Errorf("shutdown took %v, want within the pass timeout %v", d, passTimeout)
	}
	// The lease was released on the way out: the rival takes it at once.
	if ok, err := rival.Lead(ctx); !ok || err != nil {
		t.Errorf("rival Lead after shutdown = %v, %v; want true, nil", ok, err)
	}
	if terminated(liveInst) {
		t.Errorf("the live workspace's instance %s was terminated", liveInst)
	}
}

func TestWorkerExitsOnSIGTERM(t *testing.T) {
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runUntilSignal([]string{"-addr", "127.0.0.1:0", "-interval", "20ms", "-pass-timeout", "1s"},
			env(nil), io.Discard, func(a string) { addr <- a })
	}()
	select {
	case <-addr:
	case err := <-done:
		t.Fatalf("worker returned before starting: %v", err)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not exit within 5s of SIGTERM")
	}
}

func TestParse(t *testing.T) {
	c, err := parse(nil, env(map[string]string{
		"ROW_GONE": "true", "DRY_RUN": "1", "MIN_AGE": "20m", "INTERVAL": "5s", "PASS_TIMEOUT": "3s", "LEASE_TTL": "9s", "ADDR": ":7",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.rowGone || !c.dryRun || c.minAge != 20*time.Minute || c.interval != 5*time.Second ||
		c.passTimeout != 3*time.Second || c.leaseTTL != 9*time.Second || c.addr != ":7" {
		t.Errorf("config %+v, want the environment's values", c)
	}
	if c, err := parse([]string{"-regions", "us-east-1, eu-west-1"}, env(nil), io.Discard); err != nil || !slices.Equal(c.regions, []string{"us-east-1", "eu-west-1"}) {
		t.Errorf("-regions: %q, %v; want us-east-1 and eu-west-1", c.regions, err)
	}
	bad := map[string]struct {
		args []string
		env  map[string]string
	}{
		"bad bool in env":     {nil, map[string]string{"ROW_GONE": "maybe"}},
		"bad duration in env": {nil, map[string]string{"MIN_AGE": "soon"}},
		"stray argument":      {[]string{"x"}, nil},
		"empty region":        {[]string{"-regions", "us-east-1,,eu-west-1"}, nil},
		"region twice":        {nil, map[string]string{"REGIONS": "us-east-1, us-east-1"}},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(c.args, env(c.env), io.Discard); err == nil {
				t.Error("parse: nil error, want one")
			}
		})
	}
	// A bad sweeper setting is an error from run, before anything starts.
	if err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-interval", "0s"}, env(nil), io.Discard, nil); err == nil {
		t.Error("run with -interval 0s: nil error, want one")
	}
}

func TestWorkerDryRunTouchesNothing(t *testing.T) {
	ctx := context.Background()
	db, cloud := testBackends(t)
	// A workspace the host removed with its own UPDATE, still holding its
	// instance; and an hour-old instance whose row never existed.
	removedID, removedInst := removedHolding(t, db, cloud, func(id string) error {
		_, err := db.Pool.Exec(ctx, `UPDATE workspaces SET status = 'removed' WHERE id = $1`, id)
		return err
	})
	for range 3 { // live workspaces, so one orphan trips no breaker
		live, err := db.Rows.Insert(ctx, workspaces.NewID(), "")
		if err != nil {
			t.Fatal(err)
		}
		inst := cloud.Fake.Launch(ec2fake.Instance{Tags: tags(live.ID), LaunchTime: time.Now().Add(-time.Hour)})
		if _, err := db.Rows.Record(ctx, live.ID, inst); err != nil {
			t.Fatal(err)
		}
	}
	orphan := cloud.Fake.Launch(ec2fake.Instance{Tags: tags(workspaces.NewID()), LaunchTime: time.Now().Add(-time.Hour)})

	cfg := config{
		addr: "127.0.0.1:0", rowGone: true, dryRun: true, minAge: time.Minute,
		interval: 50 * time.Millisecond, passTimeout: 2 * time.Second, leaseTTL: 3 * time.Second,
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(runCtx, cfg, db, cloud, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addr <- a })
	}()
	<-addr
	would := func() map[string]bool {
		list, err := db.Ledger.List(ctx, events.Filter{Type: events.TypeDryRun})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, e := range list {
			if id, _ := e.Payload["instance_id"].(string); id != "" {
				out[id] = true
			}
		}
		return out
	}
	waitFor(t, 10*time.Second, "no dry-run event for both the removed row's instance and the orphan", func() bool {
		w := would()
		return w[removedInst] && w[orphan]
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	for _, id := range []string{removedInst, orphan} {
		if inst, _ := cloud.Fake.Instance(id); inst.State != ec2fake.Running {
			t.Errorf("instance %s is %s after a dry run, want running", id, inst.State)
		}
	}
	if n := cloud.Fake.Calls("TerminateInstances"); n != 0 {
		t.Errorf("a dry run made %d TerminateInstances calls, want 0", n)
	}
	if ws, err := db.Rows.Get(ctx, removedID); err != nil || ws.InstanceID != removedInst {
		t.Errorf("removed row holds %q (%v) after a dry run, want %s", ws.InstanceID, err, removedInst)
	}
}

// failingLeader cannot reach its lease table.
type failingLeader struct{}

func (failingLeader) Lead(context.Context) (bool, error) {
	return false, errors.New("connection refused")
}
func (failingLeader) Release(context.Context) error { return nil }

func TestReadinessSaysWhatIsWrong(t *testing.T) {
	ctx := context.Background()
	db, err := backend.OpenDatabase(ctx, backend.DatabaseOptions{URL: pgtest.Open(t).URL})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)

	fresh := &watchedLeader{Leader: failingLeader{}, ttl: time.Minute, started: time.Now()}
	if err := readiness(ctx, db, fresh); err != nil {
		t.Errorf("readiness just after start = %v, want ready", err)
	}
	unread := &watchedLeader{Leader: failingLeader{}, ttl: time.Second, started: time.Now().Add(-2 * time.Second)}
	if _, err := unread.Lead(ctx); err == nil {
		t.Fatal("failingLeader answered")
	}
	if err := readiness(ctx, db, unread); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("readiness with the lease unread for 2 TTLs = %v, want a lease error", err)
	}

	db.Pool.Close() // the database is gone
	if err := readiness(ctx, db, fresh); err == nil || !strings.Contains(err.Error(), "database unreachable") {
		t.Errorf("readiness with the database down = %v, want database unreachable", err)
	}
}

// Two workers with -regions over one database: each region's removed rows
// are reaped through that region's EC2 alone, the two regions' leases are
// led one by each worker, and shutting down leaves the group.
func TestWorkersShareRegions(t *testing.T) {
	ctx := context.Background()
	db, _ := testBackends(t)
	regionNames := []string{"eu-west-1", "us-east-1"}
	clouds, err := backend.OpenRegions(ctx, "", regionNames, owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer clouds.Close()
	instances := map[string][]string{} // by region
	for r, region := range regionNames {
		for i := range 5 {
			ws, err := db.Rows.Insert(ctx, workspaces.NewID(), "")
			if err != nil {
				t.Fatal(err)
			}
			// Distinct ids across the regions: each fake alone would
			// number its instances alike.
			inst := clouds.EC2[region].Fake.Launch(ec2fake.Instance{ID: fmt.Sprintf("i-%017x", 0x100*(r+1)+i), Tags: tags(ws.ID)})
			if _, err := db.Rows.Record(ctx, ws.ID, inst); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Pool.Exec(ctx, `UPDATE workspaces SET region = $2 WHERE id = $1`, ws.ID, region); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Store.RemoveTree(ctx, ws.ID); err != nil {
				t.Fatal(err)
			}
			instances[region] = append(instances[region], inst)
		}
	}

	cfg := config{
		addr: "127.0.0.1:0", minAge: time.Minute, regions: regionNames,
		interval: 50 * time.Millisecond, passTimeout: 2 * time.Second, leaseTTL: 3 * time.Second,
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 2)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr := make(chan string, 2)
	for range 2 {
		go func() { done <- serve(runCtx, cfg, db, nil, clouds, log, func(a string) { addr <- a }) }()
	}
	bases := []string{"http://" + <-addr, "http://" + <-addr}

	waitFor(t, 10*time.Second, "every region's instances terminated", func() bool {
		for region, ids := range instances {
			for _, id := range ids {
				if inst, _ := clouds.EC2[region].Fake.Instance(id); inst.State != ec2fake.Terminated && inst.State != ec2fake.ShuttingDown {
					return false
				}
			}
		}
		return true
	})
	for region, ids := range instances {
		for _, q := range clouds.EC2[region].Fake.Requests() {
			for _, id := range q.InstanceIDs {
				if !slices.Contains(ids, id) {
					t.Errorf("%s was sent %s %s, another region's instance", region, q.Action, id)
				}
			}
		}
	}
	holders := func() map[string]string {
		rows, err := db.Pool.Query(ctx, `SELECT name, holder FROM leakless_leases WHERE name LIKE $1 AND expires_at > now()`, LeaseName+"/shard/%")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var name, holder string
			if err := rows.Scan(&name, &holder); err != nil {
				t.Fatal(err)
			}
			out[name] = holder
		}
		return out
	}
	waitFor(t, 10*time.Second, "the two regions led by one worker each", func() bool {
		h := holders()
		return len(h) == 2 && h[LeaseName+"/shard/eu-west-1"] != h[LeaseName+"/shard/us-east-1"]
	})

	// Each worker reports each region's leadership apart: one leads it,
	// the other follows.
	leading := func(region string) int {
		led := 0
		for _, base := range bases {
			_, metrics := get(t, base+"/metrics")
			for line := range strings.Lines(metrics) {
				if strings.HasPrefix(line, "leakless_sweeper_leader{") && strings.Contains(line, `region="`+region+`"`) && strings.HasSuffix(line, " 1\n") {
					led++
				}
			}
		}
		return led
	}
	waitFor(t, 5*time.Second, "one worker to report leading each region on /metrics", func() bool {
		return leading("eu-west-1") == 1 && leading("us-east-1") == 1
	})

	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("serve: %v", err)
		}
	}
	if h := holders(); len(h) != 0 {
		t.Errorf("after shutdown the leases %v are still held", h)
	}
}
