package audit

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

func TestClassifyDependent(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	known := store.Known{
		Now:          now,
		Provisioning: map[string]bool{"ws-prov": true},
		Removed:      map[string]bool{"ws-removed": true, "ws-stopping": true},
		Stopping:     map[string]bool{"ws-stopping": true},
	}
	liveRows := map[string]bool{"ws-live": true}
	cfg := &Config{MinAge: 10 * time.Minute, ResourceTag: "rid", KeepTag: "keep"}
	cases := []struct {
		name  string
		dep   teardown.Dependent
		want  string
		leaks bool
	}{
		{"attached, whatever its row", teardown.Dependent{InUse: true, Tags: map[string]string{"rid": "ws-removed"}}, DependentInUse, false},
		{"free, with the keep tag", teardown.Dependent{Tags: map[string]string{"rid": "ws-removed", "keep": ""}}, DependentKept, false},
		{"free, no row id", teardown.Dependent{Tags: map[string]string{}}, DependentUntagged, true},
		{"free, its row provisioning", teardown.Dependent{Tags: map[string]string{"rid": "ws-prov"}}, DependentHeld, false},
		{"free, a live instance carries its row id", teardown.Dependent{Tags: map[string]string{"rid": "ws-live"}}, DependentHeld, false},
		{"free, its row removed and still holding its instance", teardown.Dependent{Tags: map[string]string{"rid": "ws-stopping"}}, DependentStopping, true},
		{"free, its row removed, however young", teardown.Dependent{CreatedAt: now.Add(-time.Minute), Tags: map[string]string{"rid": "ws-removed"}}, DependentRemoved, true},
		{"free, no row, older than MinAge", teardown.Dependent{CreatedAt: now.Add(-time.Hour), Tags: map[string]string{"rid": "ws-none"}}, DependentMissing, true},
		{"free, no row, younger than MinAge", teardown.Dependent{CreatedAt: now.Add(-time.Minute), Tags: map[string]string{"rid": "ws-none"}}, DependentRecent, false},
		{"free, no row, no creation time", teardown.Dependent{Tags: map[string]string{"rid": "ws-none"}}, DependentMissing, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := classifyDependent(c.dep, known, liveRows, cfg)
			if got != c.want || IsDependentLeak(got) != c.leaks {
				t.Errorf("classifyDependent = %s (leak %v), want %s (leak %v)", got, IsDependentLeak(got), c.want, c.leaks)
			}
		})
	}
}

func TestPricesOfDependents(t *testing.T) {
	p, err := LoadPrices("")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dep    teardown.Dependent
		usd    float64
		priced bool
	}{
		{teardown.Dependent{Kind: teardown.DependentVolume, Type: "gp3", SizeGiB: 100}, 8.0 / 730, true}, // $0.08 a GB-month
		{teardown.Dependent{Kind: teardown.DependentVolume, Type: "gp2", SizeGiB: 10}, 1.0 / 730, true},
		{teardown.Dependent{Kind: teardown.DependentVolume, Type: "io9", SizeGiB: 10}, 0, false},
		{teardown.Dependent{Kind: teardown.DependentAddress}, 0.005, true}, // a public IPv4 address an hour
		{teardown.Dependent{Kind: teardown.DependentInterface}, 0, true},
		{teardown.Dependent{Kind: teardown.DependentSpotRequest}, 0, true},
	}
	for _, c := range cases {
		usd, priced := p.Dependent(c.dep)
		if math.Abs(usd-c.usd) > 1e-12 || priced != c.priced {
			t.Errorf("%s %s %d GiB: $%v/h priced %v, want $%v/h priced %v", c.dep.Kind, c.dep.Type, c.dep.SizeGiB, usd, priced, c.usd, c.priced)
		}
	}
}

// The census lists the dependents before it reads the store, sorts each
// into one class, totals the classes by kind with their cost, and counts
// what is left behind apart from the instances' leaks.
func TestTakeCountsDependentsByClassWithCost(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory(store.Table{Removed: "removed"})
	st.Put(store.Row{ID: "ws-live", Status: "ready", InstanceID: "i-live"})
	st.Put(store.Row{ID: "ws-gone", Status: "removed"})
	tags := func(rid string) map[string]string { return map[string]string{"rid": rid} }
	old := time.Now().Add(-24 * time.Hour)
	deps := &listing{deps: []teardown.Dependent{
		{Kind: teardown.DependentVolume, ID: "vol-attached", State: "in-use", Type: "gp3", SizeGiB: 50, CreatedAt: old, Tags: tags("ws-live"), InUse: true},
		{Kind: teardown.DependentVolume, ID: "vol-left", State: "available", Type: "gp3", SizeGiB: 100, CreatedAt: old, Tags: tags("ws-gone")},
		{Kind: teardown.DependentVolume, ID: "vol-left", State: "available", Type: "gp3", SizeGiB: 100, CreatedAt: old, Tags: tags("ws-gone")}, // listed twice
		{Kind: teardown.DependentVolume, ID: "vol-rowless", State: "available", Type: "io9", SizeGiB: 10, CreatedAt: old, Tags: tags("ws-never")},
		{Kind: teardown.DependentAddress, ID: "eipalloc-left", State: "unassociated", Tags: tags("ws-gone")},
		{Kind: teardown.DependentAddress, ID: "eipalloc-used", State: "associated", Tags: tags("ws-live"), InUse: true},
		{Kind: teardown.DependentInterface, ID: "eni-free", State: "available", Tags: tags("ws-live")},
		{Kind: teardown.DependentSpotRequest, ID: "sir-left", State: "open", CreatedAt: old, Tags: map[string]string{}},
	}}
	inv := inventoryFunc(func() []teardown.Instance {
		return []teardown.Instance{{ID: "i-live", State: "running", Type: "t3.micro", LaunchedAt: old, Tags: tags("ws-live")}}
	})
	prices, err := LoadPrices("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Take(ctx, Config{
		Inventory: inv, Types: noTypes{}, Store: listedFirst{st, deps, t}, Ledger: noLedger{},
		Prices: prices, Dependents: deps, ResourceTag: "rid",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]DependentTotal{
		DependentInUse:    {Volumes: 1, VolumeGiB: 50, Addresses: 1, USDPerH: 50*0.08/730 + 0.005},
		DependentHeld:     {Interfaces: 1},
		DependentRemoved:  {Volumes: 1, VolumeGiB: 100, Addresses: 1, USDPerH: 100*0.08/730 + 0.005},
		DependentMissing:  {Volumes: 1, VolumeGiB: 10},
		DependentUntagged: {SpotRequests: 1},
	}
	for _, cl := range DependentClasses {
		got, w := r.DependentClass(cl), want[cl]
		w.Class, w.Leak = cl, IsDependentLeak(cl)
		if math.Abs(got.USDPerH-w.USDPerH) > 1e-9 {
			t.Errorf("class %s: $%v/h, want $%v/h", cl, got.USDPerH, w.USDPerH)
		}
		got.USDPerH, w.USDPerH = 0, 0
		if got != w {
			t.Errorf("class %s: %+v, want %+v", cl, got, w)
		}
	}
	if len(r.Dependents) != 7 || r.DependentLeaks != 4 || math.Abs(r.DependentLeakUSDPerHour-(8.0/730+0.005)) > 1e-9 {
		t.Errorf("%d dependents, %d left behind at $%v/h; want 7 (one listed twice), 4, $%v/h", len(r.Dependents), r.DependentLeaks, r.DependentLeakUSDPerHour, 8.0/730+0.005)
	}
	if r.Leaks != 0 || !strings.Contains(strings.Join(r.Unpriced, " "), "volume:io9") {
		t.Errorf("instance leaks %d, unpriced %v; want 0 and volume:io9 named", r.Leaks, r.Unpriced)
	}
	var out bytes.Buffer
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"7 owned dependents, 4 left behind", "DEPENDENT CLASS", "row_removed", "dependents left behind:", "vol-left", "100 GiB gp3", "eipalloc-left", "sir-left"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
	if strings.Contains(out.String(), "vol-attached") {
		t.Errorf("table lists an attached volume as left behind:\n%s", out.String())
	}

	sum := Sum([]Located{{Location: "a", Report: r}, {Location: "b", Report: r}})
	var removed DependentTotal
	for _, t := range sum.DependentTotal {
		if t.Class == DependentRemoved {
			removed = t
		}
	}
	if sum.DependentLeaks != 8 || removed.Volumes != 2 || removed.Addresses != 2 {
		t.Errorf("two locations: %d left behind, removed-row class %+v; want 8, 2 volumes and 2 addresses", sum.DependentLeaks, removed)
	}
}

// A census without Config.Dependents reports none, and lists nothing.
func TestTakeWithoutDependentsListsNone(t *testing.T) {
	inv := inventoryFunc(func() []teardown.Instance { return nil })
	r, err := Take(context.Background(), Config{Inventory: inv, Types: noTypes{}, Store: store.NewMemory(store.Table{Removed: "removed"}), Ledger: noLedger{}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if r.DependentClasses != nil || strings.Contains(out.String(), "dependent") {
		t.Errorf("dependents reported without a lister: %v\n%s", r.DependentClasses, out.String())
	}
}

type listing struct {
	deps  []teardown.Dependent
	calls int
}

func (l *listing) OwnedDependents(context.Context) ([]teardown.Dependent, error) {
	l.calls++
	return l.deps, nil
}

// listedFirst fails the test when the store is read before the
// dependents are listed: a row inserted before its dependent was created
// would be missed.
type listedFirst struct {
	*store.Memory
	deps *listing
	t    *testing.T
}

func (l listedFirst) Known(ctx context.Context, rids, iids []string) (store.Known, error) {
	if l.deps.calls == 0 {
		l.t.Error("the store was read before the dependents were listed")
	}
	return l.Memory.Known(ctx, rids, iids)
}

type inventoryFunc func() []teardown.Instance

func (f inventoryFunc) Owned(context.Context) ([]teardown.Instance, error) { return f(), nil }

type noLedger struct{}

func (noLedger) List(context.Context, events.Filter) ([]events.Event, error) { return nil, nil }

type noTypes struct{}

func (noTypes) DescribeInstanceTypes(context.Context, *ec2.DescribeInstanceTypesInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	return &ec2.DescribeInstanceTypesOutput{}, nil
}
