package audit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/census"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
)

// The classes Take sorts each live owned instance into.
const (
	Held              = "held"               // a live row holds it
	Provisioning      = "provisioning"       // a live row with no instance yet names it, within the provision timeout
	StuckProvisioning = "stuck_provisioning" // the same, past the provision timeout: the create never recorded it
	RemovedRunning    = "removed_running"    // a removed row still holds it: the sweeper's backlog
	RowGone           = "row_gone"           // no row holds it or is provisioning it, older than MinAge
	Recent            = "recent"             // the same, younger than MinAge: a launch not recorded yet, or a leak in the making
	Kept              = "kept"               // no row holds it; the keep tag keeps it
	Protected         = "protected"          // a leak whose last stop EC2 refused with OperationNotPermitted (termination protection)
)

// Classes is every class, in the order a report shows them.
var Classes = []string{Held, Provisioning, Kept, Recent, RemovedRunning, StuckProvisioning, RowGone, Protected}

// IsLeak reports whether class counts as a leak.
func IsLeak(class string) bool {
	switch class {
	case RemovedRunning, StuckProvisioning, RowGone, Protected:
		return true
	}
	return false
}

// PendingScan bounds how many due rows are read to learn which instances
// removed rows hold.
const PendingScan = 10000

// ledgerScan bounds how many stop failures are read from the ledger.
const ledgerScan = 5000

// Store is what Take reads of the host table: [store.Postgres] and
// [store.Memory] are both one.
type Store interface {
	Known(ctx context.Context, resourceIDs, instanceIDs []string) (store.Known, error)
	Pending(ctx context.Context, limit int) ([]store.Pending, error)
	Stats(ctx context.Context) (store.Stats, error)
}

// Ledger is what Take reads of the leak ledger.
type Ledger interface {
	List(ctx context.Context, f events.Filter) ([]events.Event, error)
}

// Config is one census: where to look, and the sweeper's guards to judge
// by. Inventory, Types, Store and Ledger are required; a zero guard is the
// sweeper's default.
type Config struct {
	Inventory teardown.Inventory // the owned instances
	Types     TypeDescriber      // their vCPU counts
	Store     Store
	Ledger    Ledger
	Prices    Prices            // estimated prices (see Prices); nil prices nothing
	Owner     map[string]string // shown in the report
	Table     string            // shown in the report
	// Dependents, when set, adds the owned volumes, interfaces, Elastic
	// IPs and spot requests to the census.
	Dependents DependentLister

	MinAge           time.Duration // an instance no row explains is row-gone only past this age
	ProvisionTimeout time.Duration // a live row with no instance protects its tagged instances this long
	ResourceTag      string        // the tag key holding the row id
	KeepTag          string        // the tag key that keeps an instance out of every reaping
}

func (c *Config) defaults() error {
	if c.Inventory == nil || c.Types == nil || c.Store == nil || c.Ledger == nil {
		return errors.New("audit: Inventory, Types, Store and Ledger are required")
	}
	if c.MinAge < 0 || c.ProvisionTimeout < 0 {
		return fmt.Errorf("audit: MinAge %v and ProvisionTimeout %v must not be negative", c.MinAge, c.ProvisionTimeout)
	}
	if c.MinAge == 0 {
		c.MinAge = sweeper.DefaultMinAge
	}
	if c.ProvisionTimeout == 0 {
		c.ProvisionTimeout = sweeper.DefaultProvisionTimeout
	}
	if c.ResourceTag == "" {
		c.ResourceTag = sweeper.DefaultResourceTag
	}
	if c.KeepTag == "" {
		c.KeepTag = sweeper.DefaultKeepTag
	}
	return nil
}

// Report is one census.
type Report struct {
	At        time.Time         `json:"at"` // the database's clock at the read
	Owner     map[string]string `json:"owner"`
	Table     string            `json:"table"`
	PriceNote string            `json:"price_note"`
	Classes   []ClassTotal      `json:"classes"`
	Instances []Instance        `json:"instances"`
	Leaks     int               `json:"leaks"`
	// LeakUSDPerHour is the estimated cost of the leaking instances.
	LeakUSDPerHour float64     `json:"estimated_leak_usd_per_hour"`
	Backlog        Backlog     `json:"backlog"`
	Permanent      []Permanent `json:"permanent_leaks"`
	Unpriced       []string    `json:"unpriced_types"`

	// The dependents, when Config.Dependents is set: the totals of
	// every class in DependentClasses, every owned dependent, and those
	// left behind.
	DependentClasses []DependentTotal `json:"dependent_classes,omitempty"`
	Dependents       []Dependent      `json:"dependents,omitempty"`
	DependentLeaks   int              `json:"dependent_leaks"`
	// DependentLeakUSDPerHour is the estimated cost of the dependents
	// left behind.
	DependentLeakUSDPerHour float64 `json:"estimated_dependent_leak_usd_per_hour"`

	Warnings []string `json:"warnings,omitempty"`
}

// Class returns the total of class, zero when the report has none.
func (r *Report) Class(class string) ClassTotal {
	for _, t := range r.Classes {
		if t.Class == class {
			return t
		}
	}
	return ClassTotal{Class: class, Leak: IsLeak(class)}
}

// ClassTotal is one class's instances, vCPUs and estimated cost.
type ClassTotal struct {
	Class     string  `json:"class"`
	Leak      bool    `json:"leak"`
	Instances int     `json:"instances"`
	VCPUs     int     `json:"vcpus"`
	USDPerH   float64 `json:"estimated_usd_per_hour"`
}

// Instance is one live owned instance and its class.
type Instance struct {
	InstanceID string    `json:"instance_id"`
	Class      string    `json:"class"`
	ResourceID string    `json:"resource_id,omitempty"`
	State      string    `json:"state"`
	Type       string    `json:"type"`
	LaunchedAt time.Time `json:"launched_at"`
	Age        string    `json:"age"`
	VCPUs      int       `json:"vcpus"`
	USDPerH    float64   `json:"estimated_usd_per_hour"`
}

// Backlog is the store's pending work, from [store.Stats].
type Backlog struct {
	Pending       int    `json:"pending"`
	OldestPending string `json:"oldest_pending"`
	Permanent     int    `json:"permanent"`
	Acknowledged  int    `json:"acknowledged"`
}

// Permanent is a leak whose last stop failed for good, from the ledger.
type Permanent struct {
	InstanceID string    `json:"instance_id"`
	ResourceID string    `json:"resource_id,omitempty"`
	ErrorCode  string    `json:"error_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	At         time.Time `json:"at"`
}

// Take lists the owned instances (and dependents) first and reads the
// store second, as the sweeper does, so a row inserted before its launch
// is seen. It writes nothing anywhere.
func Take(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	owned, err := cfg.Inventory.Owned(ctx)
	if err != nil {
		return nil, err
	}
	live, iids, rids := census.Live(owned, cfg.ResourceTag)
	var deps []teardown.Dependent
	if cfg.Dependents != nil {
		if deps, err = cfg.Dependents.OwnedDependents(ctx); err != nil {
			return nil, err
		}
		for _, d := range deps {
			if rid := d.Tags[cfg.ResourceTag]; rid != "" {
				rids = append(rids, rid)
			}
		}
		slices.Sort(rids)
		rids = slices.Compact(rids)
	}
	known, err := cfg.Store.Known(ctx, rids, iids)
	if err != nil {
		return nil, err
	}
	due, err := cfg.Store.Pending(ctx, PendingScan)
	if err != nil {
		return nil, err
	}
	removedHolds := map[string]bool{}
	for _, d := range due {
		removedHolds[d.InstanceID] = true
	}
	stats, err := cfg.Store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	failures, err := cfg.Ledger.List(ctx, events.Filter{Type: events.TypeReapFailed, Limit: ledgerScan})
	if err != nil {
		return nil, err
	}
	lastFailure := map[string]events.Event{} // by instance: the newest stop failure
	for _, e := range failures {
		if id, _ := e.Payload["instance_id"].(string); id != "" {
			if _, ok := lastFailure[id]; !ok {
				lastFailure[id] = e
			}
		}
	}

	r := &Report{At: known.Now, Owner: cfg.Owner, Table: cfg.Table, PriceNote: PriceNote, Permanent: []Permanent{}, Unpriced: []string{}}
	typeNames := map[string]bool{}
	for _, in := range live {
		if in.Type != "" {
			typeNames[in.Type] = true
		}
	}
	cpus, err := vcpus(ctx, cfg.Types, slices.Sorted(maps.Keys(typeNames)))
	if err != nil {
		r.Warnings = append(r.Warnings, fmt.Sprintf("vCPU counts unknown: %v", err))
	}
	totals := map[string]*ClassTotal{}
	for _, cl := range Classes {
		totals[cl] = &ClassTotal{Class: cl, Leak: IsLeak(cl)}
	}
	unpriced := map[string]bool{}
	for _, in := range live {
		rid := in.Tags[cfg.ResourceTag]
		cl := classify(in, rid, known, removedHolds, &cfg)
		f, failed := lastFailure[in.ID]
		if IsLeak(cl) && failed && f.Payload["error_code"] == "OperationNotPermitted" {
			cl = Protected
		}
		price, priced := cfg.Prices[in.Type]
		if !priced {
			unpriced[in.Type] = true
		}
		row := Instance{
			InstanceID: in.ID, Class: cl, ResourceID: rid, State: in.State, Type: in.Type,
			LaunchedAt: in.LaunchedAt.UTC(), Age: age(known.Now, in.LaunchedAt), VCPUs: cpus[in.Type], USDPerH: price,
		}
		r.Instances = append(r.Instances, row)
		t := totals[cl]
		t.Instances++
		t.VCPUs += row.VCPUs
		t.USDPerH += price
		if IsLeak(cl) {
			r.Leaks++
			r.LeakUSDPerHour += price
		}
		if IsLeak(cl) && failed && f.Payload["permanent"] == true {
			code, _ := f.Payload["error_code"].(string)
			msg, _ := f.Payload["error"].(string)
			r.Permanent = append(r.Permanent, Permanent{InstanceID: in.ID, ResourceID: f.Subject, ErrorCode: code, Error: msg, At: f.At.UTC()})
		}
	}
	for _, cl := range Classes {
		r.Classes = append(r.Classes, *totals[cl])
	}
	if cfg.Dependents != nil {
		r.takeDependents(deps, known, census.LiveRows(live, cfg.ResourceTag), &cfg, unpriced)
	}
	slices.SortFunc(r.Instances, func(a, b Instance) int {
		if d := slices.Index(Classes, a.Class) - slices.Index(Classes, b.Class); d != 0 {
			return d
		}
		return a.LaunchedAt.Compare(b.LaunchedAt)
	})
	r.Unpriced = slices.Sorted(maps.Keys(unpriced))
	r.Backlog = Backlog{Pending: stats.Pending, Permanent: stats.Permanent, Acknowledged: stats.Acknowledged,
		OldestPending: stats.OldestPending.Round(time.Second).String()}
	return r, nil
}

// classify sorts one live owned instance, as the sweeper would see it.
// A removed row holds it when the row is due in the store's Pending, or
// when its resource tag names a removed row and some row holds it.
func classify(in teardown.Instance, rid string, known store.Known, removedHolds map[string]bool, cfg *Config) string {
	a := known.Now.Sub(in.LaunchedAt)
	switch {
	case known.Held[in.ID] && (removedHolds[in.ID] || rid != "" && known.Removed[rid]):
		return RemovedRunning
	case known.Held[in.ID]:
		return Held
	}
	if _, keep := in.Tags[cfg.KeepTag]; keep {
		return Kept
	}
	switch {
	case rid != "" && known.Provisioning[rid] && (in.LaunchedAt.IsZero() || a < cfg.ProvisionTimeout):
		return Provisioning
	case rid != "" && known.Provisioning[rid]:
		return StuckProvisioning
	case rid != "" && known.Removed[rid]:
		return RowGone // its row says it is deleted: no age makes it in use
	case in.LaunchedAt.IsZero() || a < cfg.MinAge:
		return Recent
	}
	return RowGone
}

func age(now, launched time.Time) string {
	if launched.IsZero() {
		return "unknown"
	}
	return now.Sub(launched).Round(time.Second).String()
}
