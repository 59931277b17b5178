package sweeper

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// collect reads every data point the sweeper recorded, keyed by instrument
// name and then by the attribute set's encoding ("" for no attributes).
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	out := map[string]map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != meterName {
			continue
		}
		for _, m := range sm.Metrics {
			points := map[string]float64{}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					points[p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					points[p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					points[p.Attributes.Encoded(attribute.DefaultEncoder())] = p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					points[p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Count)
				}
			}
			out[m.Name] = points
		}
	}
	return out
}

func TestMetricsCountEveryOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(table)
		putRemoved(mem, 4, "")
		stop := &recorder{answer: func(_ context.Context, id string) error {
			switch id {
			case "i-0":
				return teardown.Permanent(codedError{"UnauthorizedOperation"})
			case "i-1":
				return codedError{"InternalError"}
			}
			return nil
		}}
		old := time.Now().Add(-time.Hour)
		inv := inventoryFunc(func(context.Context) ([]teardown.Instance, error) {
			// Five owned instances: r2's and r3's, held by their removed
			// rows until the pass's re-drive stops them (and listed no
			// more), and three that no row explains.
			var out []teardown.Instance
			for _, id := range []string{"i-2", "i-3", "i-x", "i-y", "i-z"} {
				state := "running"
				if len(stop.callsFor(id, old)) > 0 {
					state = "terminated"
				}
				out = append(out, teardown.Instance{ID: id, State: state, LaunchedAt: old})
			}
			return out, nil
		})
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())

		sw := newSweeper(t, mem, stop, WithMeterProvider(mp), WithRetry(teardown.WithMaxAttempts(1)),
			WithRowGone(inv, RowGone{MaxFraction: 1}))
		if _, err := sw.SweepOnce(t.Context()); err != nil {
			t.Fatalf("SweepOnce: %v", err)
		}
		got := collect(t, reader)
		want := map[string]map[string]float64{
			MetricPending:      {"": 4},
			MetricReaped:       {"": 2},
			MetricRowGoneSeen:  {"": 3},
			MetricPassDuration: {"outcome=" + OutcomeCompleted: 1},
			MetricFailed: {
				"error_code=UnauthorizedOperation,permanent=true": 1,
				"error_code=InternalError,permanent=false":        1,
			},
		}
		for name, points := range want {
			for attrs, v := range points {
				if got[name][attrs] != v {
					t.Errorf("%s{%s} = %v, want %v (all: %v)", name, attrs, got[name][attrs], v, got[name])
				}
			}
		}

		// The second pass sees the three candidates again: more than
		// MaxPerPass.
		sw.cfg.guard.MaxPerPass = 2
		if _, err := sw.SweepOnce(t.Context()); err != nil {
			t.Fatalf("second SweepOnce: %v", err)
		}
		got = collect(t, reader)
		if got[MetricAborted]["reason="+AbortMaxPerPass] != 1 || got[MetricPassDuration]["outcome="+OutcomeAborted] != 1 {
			t.Errorf("%s = %v, %s = %v; want one %s abort, one pass with outcome %s",
				MetricAborted, got[MetricAborted], MetricPassDuration, got[MetricPassDuration], AbortMaxPerPass, OutcomeAborted)
		}
	})
}

func TestMetricsFollowerReportsZeroFromTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		never := &fakeLeader{start: time.Now(), ttl: 3 * time.Second, lead: func(time.Duration) (bool, error) { return false, nil }}
		sw := newSweeper(t, store.NewMemory(table), &recorder{}, WithLeader(never), WithMeterProvider(mp))
		stop := run(t, sw)
		time.Sleep(time.Second)
		synctest.Wait()
		v, ok := collect(t, reader)[MetricLeader][""]
		stop()
		if !ok || v != 0 {
			t.Errorf("%s on a follower = %v (reported: %v), want 0 reported", MetricLeader, v, ok)
		}
	})
}

func TestMetricsDryRunAndKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		mem, f := store.NewMemory(table), newFleet()
		putRemoved(mem, 2, "")
		liveHeld(mem, f, 4)
		f.launch("i-kept", "ws-lost", time.Hour, DefaultKeepTag, "")
		sw := newSweeper(t, mem, f, WithInventory(f), WithDryRun(), WithMeterProvider(mp))
		sweep(t, sw)
		got := collect(t, reader)
		if got[MetricDryRun][""] != 2 || got[MetricKept][""] != 1 {
			t.Errorf("%s = %v, %s = %v; want 2 and 1", MetricDryRun, got[MetricDryRun], MetricKept, got[MetricKept])
		}
	})
}

func TestMetricsLeaderGauge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		l := &fakeLeader{start: time.Now(), ttl: 3 * time.Second, lead: func(e time.Duration) (bool, error) {
			return e < time.Minute, nil
		}}
		sw := newSweeper(t, store.NewMemory(table), &recorder{}, WithLeader(l), WithMeterProvider(mp))
		stop := run(t, sw)

		time.Sleep(30 * time.Second)
		if got := collect(t, reader)[MetricLeader][""]; got != 1 {
			t.Errorf("%s while leading = %v, want 1", MetricLeader, got)
		}
		time.Sleep(time.Minute)
		if got := collect(t, reader)[MetricLeader][""]; got != 0 {
			t.Errorf("%s after losing the lease = %v, want 0", MetricLeader, got)
		}
		stop()
	})
}

// The backlog gauges come from the store's Stats after every pass: the
// permanent leak stays counted, and ages, while retrying is backed off.
func TestMetricsBacklogAfterEachPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		mem := store.NewMemory(table)
		putRemoved(mem, 2, "")
		stop := &recorder{answer: func(_ context.Context, id string) error {
			if id == "i-0" {
				return teardown.Permanent(codedError{"OperationNotPermitted"})
			}
			return codedError{"InternalError"}
		}}
		sw := newSweeper(t, mem, stop, WithMeterProvider(mp), WithRetry(teardown.WithMaxAttempts(1)))
		sweep(t, sw)
		got := collect(t, reader)
		if got[MetricPermanent][""] != 1 || got[MetricOldestPending][""] != 0 {
			t.Fatalf("%s = %v, %s = %v after the first pass; want 1 permanent, age 0 (recorded this instant)",
				MetricPermanent, got[MetricPermanent], MetricOldestPending, got[MetricOldestPending])
		}
		time.Sleep(90 * time.Minute)
		sweep(t, sw)
		got = collect(t, reader)
		if got[MetricPermanent][""] != 1 || got[MetricOldestPending][""] != (90*time.Minute).Seconds() {
			t.Fatalf("%s = %v, %s = %v 90 minutes on; want 1 permanent and 5400 s",
				MetricPermanent, got[MetricPermanent], MetricOldestPending, got[MetricOldestPending])
		}
	})
}

// A follower exports the backlog from the start and keeps it current,
// reading it once per interval, so max() over replicas needs no leader.
func TestMetricsFollowerReportsTheBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		mem := store.NewMemory(table)
		putRemoved(mem, 1, "")
		p := store.Pending{ResourceID: "r0", InstanceID: "i-0"}
		if err := mem.Failed(context.Background(), p, teardown.Permanent(codedError{"UnauthorizedOperation"}), time.Hour); err != nil {
			t.Fatal(err)
		}
		never := &fakeLeader{start: time.Now(), ttl: 3 * time.Second, lead: func(time.Duration) (bool, error) { return false, nil }}
		rec := &recorder{}
		sw := newSweeper(t, mem, rec, WithLeader(never), WithMeterProvider(mp), WithInterval(time.Minute))
		stop := run(t, sw)
		synctest.Wait()
		if got := collect(t, reader); got[MetricPermanent][""] != 1 {
			stop()
			t.Fatalf("%s on a follower at start = %v, want 1", MetricPermanent, got[MetricPermanent])
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		age := collect(t, reader)[MetricOldestPending][""]
		stop()
		if age < (9 * time.Minute).Seconds() {
			t.Fatalf("%s on a follower 10 minutes on = %v s, want it read again since", MetricOldestPending, age)
		}
		if n := rec.count(); n != 0 {
			t.Fatalf("a follower stopped %d instances", n)
		}
	})
}

// fixedLeader always gives the same answer, and counts the questions.
type fixedLeader struct {
	leads bool
	mu    sync.Mutex
	asked int
}

func (l *fixedLeader) Lead(context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked++
	return l.leads, nil
}

func (l *fixedLeader) Release(context.Context) error { return nil }

func (l *fixedLeader) questions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.asked
}

// Two sweepers in one process, one per region, through one meter
// provider: each region's leader gauge and reaped count stand apart.
func TestMetricAttributesKeepSweepersApart(t *testing.T) {
	mem := store.NewMemory(table)
	mem.Put(store.Row{ID: "r0", Status: "removed", InstanceID: "i-0", Location: "eu-west-1"})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	leaders := map[string]*fixedLeader{"eu-west-1": {leads: true}, "us-east-1": {leads: false}}
	stop := &recorder{}
	var sweepers []*Sweeper
	for region, l := range leaders {
		sweepers = append(sweepers, newSweeper(t, mem.In(region), stop, WithMeterProvider(mp), WithLeader(l),
			WithMetricAttributes(attribute.String("region", region))))
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- RunAll(ctx, sweepers...) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunAll: %v", err)
		}
	}()
	var got map[string]map[string]float64
	waitFor(t, 5*time.Second, "eu-west-1 to reap its row and us-east-1 to ask for the lease", func() bool {
		got = collect(t, reader)
		return got[MetricReaped]["region=eu-west-1"] == 1 && leaders["us-east-1"].questions() > 0
	})
	want := map[string]float64{"region=eu-west-1": 1, "region=us-east-1": 0}
	if l := got[MetricLeader]; len(l) != 2 || l["region=eu-west-1"] != 1 || l["region=us-east-1"] != 0 {
		t.Errorf("%s = %v, want %v", MetricLeader, l, want)
	}
	if r := got[MetricReaped]; len(r) != 1 {
		t.Errorf("%s = %v, want eu-west-1's reap alone", MetricReaped, r)
	}
}
