package audit

import (
	"context"
	"slices"
	"time"

	"github.com/leakless/leakless/internal/census"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// DependentLister lists what instances leave behind: the owned volumes,
// network interfaces, Elastic IPs and spot requests. *awsec2.Client is
// one.
type DependentLister interface {
	OwnedDependents(ctx context.Context) ([]teardown.Dependent, error)
}

// The classes Take sorts each owned dependent into, as the sweeper's
// dependents step would judge it.
const (
	DependentInUse    = "in_use"       // attached, associated, or a spot request whose instance is live
	DependentKept     = "kept"         // free; the keep tag keeps it
	DependentHeld     = "held"         // free, and its row is live or a live owned instance carries its row id
	DependentRecent   = "recent"       // free, no row, younger than MinAge: the sweeper waits
	DependentStopping = "row_stopping" // free, its row removed and holding an instance whose stop has not failed for good: the re-drive finishes it
	DependentRemoved  = "row_removed"  // free, and its row is removed: the sweeper reaps it
	DependentMissing  = "row_missing"  // free, no row and no live instance carries its row id: the sweeper reaps it
	DependentUntagged = "untagged"     // free, owned, with no row id: no sweep can tell whose it is
)

// DependentClasses is every dependent class, in the order a report shows
// them.
var DependentClasses = []string{DependentInUse, DependentKept, DependentHeld, DependentRecent, DependentStopping, DependentRemoved, DependentMissing, DependentUntagged}

// IsDependentLeak reports whether a dependent of class is left behind:
// free, owned, and used by no live row.
func IsDependentLeak(class string) bool {
	switch class {
	case DependentStopping, DependentRemoved, DependentMissing, DependentUntagged:
		return true
	}
	return false
}

// DependentTotal is one class's dependents by kind, and their estimated
// cost.
type DependentTotal struct {
	Class        string  `json:"class"`
	Leak         bool    `json:"leak"`
	Volumes      int     `json:"volumes"`
	VolumeGiB    int     `json:"volume_gib"`
	Interfaces   int     `json:"interfaces"`
	Addresses    int     `json:"addresses"`
	SpotRequests int     `json:"spot_requests"`
	USDPerH      float64 `json:"estimated_usd_per_hour"`
}

// Count is how many dependents the class has, of every kind.
func (t DependentTotal) Count() int { return t.Volumes + t.Interfaces + t.Addresses + t.SpotRequests }

// add counts d, priced at usd an hour.
func (t *DependentTotal) add(d teardown.Dependent, usd float64) {
	switch d.Kind {
	case teardown.DependentVolume:
		t.Volumes++
		t.VolumeGiB += d.SizeGiB
	case teardown.DependentInterface:
		t.Interfaces++
	case teardown.DependentAddress:
		t.Addresses++
	case teardown.DependentSpotRequest:
		t.SpotRequests++
	}
	t.USDPerH += usd
}

// sum adds o's counts to t.
func (t *DependentTotal) sum(o DependentTotal) {
	t.Volumes += o.Volumes
	t.VolumeGiB += o.VolumeGiB
	t.Interfaces += o.Interfaces
	t.Addresses += o.Addresses
	t.SpotRequests += o.SpotRequests
	t.USDPerH += o.USDPerH
}

// Dependent is one owned dependent and its class.
type Dependent struct {
	Kind       string    `json:"kind"`
	ID         string    `json:"id"`
	Class      string    `json:"class"`
	ResourceID string    `json:"resource_id,omitempty"`
	State      string    `json:"state"`
	Type       string    `json:"type,omitempty"`
	SizeGiB    int       `json:"size_gib,omitempty"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	Age        string    `json:"age"`
	USDPerH    float64   `json:"estimated_usd_per_hour"`
}

// DependentClass returns the dependent total of class, zero when the
// report has none.
func (r *Report) DependentClass(class string) DependentTotal {
	for _, t := range r.DependentClasses {
		if t.Class == class {
			return t
		}
	}
	return DependentTotal{Class: class, Leak: IsDependentLeak(class)}
}

// classifyDependent sorts one owned dependent, as the sweeper's
// dependents step would see it. A dependent EC2 gives no creation time
// for (an Elastic IP, an interface) is never recent: the census has no
// earlier sighting to age it by.
func classifyDependent(d teardown.Dependent, known store.Known, liveRows map[string]bool, cfg *Config) string {
	if d.InUse {
		return DependentInUse
	}
	if _, keep := d.Tags[cfg.KeepTag]; keep {
		return DependentKept
	}
	rid := d.Tags[cfg.ResourceTag]
	if rid == "" {
		return DependentUntagged
	}
	switch census.DependentRow(rid, known, liveRows) {
	case census.RowStopping:
		return DependentStopping
	case census.RowRemoved:
		return DependentRemoved
	case census.RowMissing:
		if !d.CreatedAt.IsZero() && known.Now.Sub(d.CreatedAt) < cfg.MinAge {
			return DependentRecent
		}
		return DependentMissing
	}
	return DependentHeld
}

// takeDependents classifies and prices listed into r.
func (r *Report) takeDependents(listed []teardown.Dependent, known store.Known, liveRows map[string]bool, cfg *Config, unpriced map[string]bool) {
	totals := map[string]*DependentTotal{}
	for _, cl := range DependentClasses {
		totals[cl] = &DependentTotal{Class: cl, Leak: IsDependentLeak(cl)}
	}
	r.Dependents = []Dependent{}
	seen := map[string]bool{}
	for _, d := range listed {
		if seen[d.Kind+"/"+d.ID] {
			continue // an inventory that pages may list one twice
		}
		seen[d.Kind+"/"+d.ID] = true
		cl := classifyDependent(d, known, liveRows, cfg)
		usd, priced := cfg.Prices.Dependent(d)
		if !priced {
			unpriced[dependentPriceKey(d)] = true
		}
		totals[cl].add(d, usd)
		if IsDependentLeak(cl) {
			r.DependentLeaks++
			r.DependentLeakUSDPerHour += usd
		}
		r.Dependents = append(r.Dependents, Dependent{
			Kind: d.Kind, ID: d.ID, Class: cl, ResourceID: d.Tags[cfg.ResourceTag], State: d.State,
			Type: d.Type, SizeGiB: d.SizeGiB, CreatedAt: d.CreatedAt.UTC(), Age: age(known.Now, d.CreatedAt), USDPerH: usd,
		})
	}
	for _, cl := range DependentClasses {
		r.DependentClasses = append(r.DependentClasses, *totals[cl])
	}
	slices.SortFunc(r.Dependents, func(a, b Dependent) int {
		if d := slices.Index(DependentClasses, a.Class) - slices.Index(DependentClasses, b.Class); d != 0 {
			return d
		}
		if a.Kind != b.Kind {
			return slices.Index(dependentKinds, a.Kind) - slices.Index(dependentKinds, b.Kind)
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
}

var dependentKinds = []string{teardown.DependentVolume, teardown.DependentInterface, teardown.DependentAddress, teardown.DependentSpotRequest}

// dependentPriceKey is the Prices key d is priced by, for the report's
// list of what had no price.
func dependentPriceKey(d teardown.Dependent) string {
	if d.Kind == teardown.DependentVolume {
		return volumePricePrefix + d.Type
	}
	return addressPrice
}
