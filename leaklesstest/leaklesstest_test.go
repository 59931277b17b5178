package leaklesstest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/deployment"
	"github.com/leakless/leakless/leaklesstest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// recorder is a testing.TB whose Fatalf records the failure instead of
// ending the test, so a failing assertion can be checked.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }
func (r *recorder) Helper()                           {}

var table = store.Table{Name: "workspaces", ID: "id", Status: "status", InstanceID: "instance_id", Removed: "removed"}

func cloud(t *testing.T) (*ec2fake.Server, *awsec2.Client) {
	srv := ec2fake.NewInProcess()
	t.Cleanup(srv.Close)
	api := ec2.NewFromConfig(deployment.StaticConfig(srv.URL(), ""), func(o *ec2.Options) { o.HTTPClient = srv.Client() })
	c, err := awsec2.New(api, awsec2.WithOwner(map[string]string{"team": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func launch(srv *ec2fake.Server, rid string, age time.Duration, extra ...string) string {
	tags := map[string]string{"team": "t", "leakless:resource-id": rid}
	for i := 0; i+1 < len(extra); i += 2 {
		tags[extra[i]] = extra[i+1]
	}
	return srv.Launch(ec2fake.Instance{Tags: tags, LaunchTime: time.Now().Add(-age)})
}

func TestRequireNoLeaksPassesWhenEveryInstanceIsExplained(t *testing.T) {
	srv, c := cloud(t)
	st := store.NewMemory(table)
	st.Put(store.Row{ID: "held", Status: "active", InstanceID: launch(srv, "held", time.Hour)})
	st.Put(store.Row{ID: "creating", Status: "creating"})
	launch(srv, "creating", time.Minute)
	launch(srv, "", time.Hour, "leakless:keep", "yes")
	st.Put(store.Row{ID: "done", Status: "removed"})
	srv.Launch(ec2fake.Instance{Tags: map[string]string{"team": "t", "leakless:resource-id": "done"}, State: ec2fake.Terminated})

	r := &recorder{TB: t}
	leaklesstest.RequireNoLeaks(r, st, c)
	if r.failed != "" {
		t.Fatalf("RequireNoLeaks failed: %s", r.failed)
	}
}

func TestRequireNoLeaksNamesEveryLeak(t *testing.T) {
	srv, c := cloud(t)
	st := store.NewMemory(table, store.WithRedriveGrace(0))
	pending := launch(srv, "removed", time.Hour)
	st.Put(store.Row{ID: "removed", Status: "removed", InstanceID: pending})
	st.Put(store.Row{ID: "stuck", Status: "creating"})
	stuck := launch(srv, "stuck", 3*time.Hour)
	gone := launch(srv, "gone", time.Hour)
	st.Put(store.Row{ID: "deleted", Status: "removed"})
	orphan := launch(srv, "deleted", time.Hour)
	backingOff := launch(srv, "backoff", time.Hour)
	st.Put(store.Row{ID: "backoff", Status: "removed", InstanceID: backingOff})
	if err := st.Failed(context.Background(), store.Pending{ResourceID: "backoff", InstanceID: backingOff}, fmt.Errorf("throttled"), time.Hour); err != nil {
		t.Fatal(err)
	}

	// Held by a row backing off, untagged: only the store's Stats tell.
	hidden := srv.Launch(ec2fake.Instance{Tags: map[string]string{"team": "t"}, LaunchTime: time.Now().Add(-time.Hour)})
	st.Put(store.Row{ID: "hidden", Status: "removed", InstanceID: hidden})
	if err := st.Failed(context.Background(), store.Pending{ResourceID: "hidden", InstanceID: hidden}, fmt.Errorf("throttled"), time.Hour); err != nil {
		t.Fatal(err)
	}

	r := &recorder{TB: t}
	leaklesstest.RequireNoLeaks(r, st, c, leaklesstest.WithProvisionTimeout(2*time.Hour))
	for _, want := range []string{
		"6 leaks",
		"1 more removed rows still hold an instance",
		`row "removed" is removed and still holds ` + pending,
		stuck + `: live row "stuck" has held no instance`,
		gone + `: no row holds it; its row "gone" does not exist`,
		orphan + `: no row holds it; its row "deleted" is removed`,
		backingOff + ` is running for removed row "backoff"`,
	} {
		if !strings.Contains(r.failed, want) {
			t.Errorf("failure %q\ndoes not say %q", r.failed, want)
		}
	}

	// Within a longer provision timeout the stuck row is provisioning.
	r = &recorder{TB: t}
	leaklesstest.RequireNoLeaks(r, st, c, leaklesstest.WithProvisionTimeout(4*time.Hour))
	if strings.Contains(r.failed, stuck) || !strings.Contains(r.failed, "5 leaks") {
		t.Errorf("with a 4h provision timeout: %q; want 5 leaks, %s not among them", r.failed, stuck)
	}
}

func TestRequireEvent(t *testing.T) {
	sink := events.NewMemory()
	_ = sink.Emit(context.Background(), events.Event{Type: events.TypeReapFailed, Subject: "ws-1"})
	_ = sink.Emit(context.Background(), events.Event{Type: events.TypeReaped, Subject: "ws-1", Payload: map[string]any{"n": 1}})
	_ = sink.Emit(context.Background(), events.Event{Type: events.TypeReaped, Subject: "ws-2", Payload: map[string]any{"n": 2}})

	if e := leaklesstest.RequireEvent(t, sink, events.TypeReaped, "ws-2"); e.Payload["n"] != 2 {
		t.Errorf("RequireEvent(reaped, ws-2) = %+v, want the second reaped event", e)
	}
	if e := leaklesstest.RequireEvent(t, sink, events.TypeReaped, ""); e.Subject != "ws-1" {
		t.Errorf("RequireEvent(reaped, any) = %+v, want the first", e)
	}
	r := &recorder{TB: t}
	leaklesstest.RequireEvent(r, sink, events.TypeRowGoneTerminated, "ws-1")
	if !strings.Contains(r.failed, "no "+events.TypeRowGoneTerminated) || !strings.Contains(r.failed, `sweeper.reaped "ws-2"`) {
		t.Errorf("failure %q: want it to name the missing type and list what the sink holds", r.failed)
	}
}

// A host's own Store runs the suite as store's implementations do; here
// the in-memory one stands for it.
func TestStoreContractOnAHostsStore(t *testing.T) {
	leaklesstest.StoreContract(t, func(t *testing.T, cfg leaklesstest.StoreConfig) (store.Store, leaklesstest.Host) {
		m := store.NewMemory(cfg.Table, store.WithRedriveGrace(cfg.RedriveGrace))
		return m, memoryHost{m}
	}, leaklesstest.WithLastErrorLimit(1024), leaklesstest.WithErrorPrefix("store: "))
}

type memoryHost struct{ m *store.Memory }

func (h memoryHost) Put(_ *testing.T, r store.Row)                 { h.m.Put(r) }
func (h memoryHost) Get(_ *testing.T, id string) (store.Row, bool) { return h.m.Get(id) }
func (h memoryHost) Delete(_ *testing.T, id string)                { h.m.Delete(id) }
