package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/census"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// The classes audit sorts each live owned instance into.
const (
	classHeld              = "held"               // a live row holds it
	classProvisioning      = "provisioning"       // a live row with no instance yet names it, within the provision timeout
	classStuckProvisioning = "stuck_provisioning" // the same, past the provision timeout: the create never recorded it
	classRemovedRunning    = "removed_running"    // a removed row still holds it: the sweeper's backlog
	classRowGone           = "row_gone"           // no row holds it or is provisioning it, older than -min-age
	classRecent            = "recent"             // the same, younger than -min-age: a launch not recorded yet, or a leak in the making
	classKept              = "kept"               // no row holds it; the keep tag keeps it
	classProtected         = "protected"          // a leak whose last stop EC2 refused with OperationNotPermitted (termination protection)
)

// classes is the order classes are shown in.
var classes = []string{classHeld, classProvisioning, classKept, classRecent, classRemovedRunning, classStuckProvisioning, classRowGone, classProtected}

// leakClasses are the classes that count as leaks for the exit code.
var leakClasses = map[string]bool{classRemovedRunning: true, classStuckProvisioning: true, classRowGone: true, classProtected: true}

// pendingScan bounds how many due rows audit and apply read to learn
// which instances removed rows hold.
const pendingScan = 10000

// ledgerScan bounds how many stop failures audit reads from the ledger.
const ledgerScan = 5000

// report is audit's report.
type report struct {
	At        time.Time         `json:"at"` // the database's clock at the read
	Owner     map[string]string `json:"owner"`
	Table     string            `json:"table"`
	PriceNote string            `json:"price_note"`
	Classes   []classTotal      `json:"classes"`
	Instances []instanceRow     `json:"instances"`
	Leaks     int               `json:"leaks"`
	// LeakUSDPerHour is the estimated cost of the leaking instances.
	LeakUSDPerHour float64        `json:"estimated_leak_usd_per_hour"`
	Backlog        backlog        `json:"backlog"`
	Permanent      []permanentRow `json:"permanent_leaks"`
	Unpriced       []string       `json:"unpriced_types"`
	Warnings       []string       `json:"warnings,omitempty"`
}

type classTotal struct {
	Class     string  `json:"class"`
	Leak      bool    `json:"leak"`
	Instances int     `json:"instances"`
	VCPUs     int     `json:"vcpus"`
	USDPerH   float64 `json:"estimated_usd_per_hour"`
}

type instanceRow struct {
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

type backlog struct {
	Pending       int    `json:"pending"`
	OldestPending string `json:"oldest_pending"`
	Permanent     int    `json:"permanent"`
	Acknowledged  int    `json:"acknowledged"`
}

type permanentRow struct {
	InstanceID string    `json:"instance_id"`
	ResourceID string    `json:"resource_id,omitempty"`
	ErrorCode  string    `json:"error_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	At         time.Time `json:"at"`
}

func audit(ctx context.Context, c *cli, args []string) int {
	fs := c.flags()
	var g guardFlags
	g.register(fs, c)
	priceFile := fs.String("price-file", c.getenv("PRICE_FILE"), "JSON object of instance type → estimated $/h, over the embedded table (env PRICE_FILE)")
	if err := c.parse(fs, args); err != nil {
		return c.fail(err)
	}
	if err := g.check(); err != nil {
		return c.fail(err)
	}
	p, err := loadPrices(*priceFile)
	if err != nil {
		return c.fail(err)
	}
	defer c.close()
	if err := c.open(ctx, true); err != nil {
		return c.fail(err)
	}
	r, err := takeCensus(ctx, c, g, p)
	if err != nil {
		return c.fail(err)
	}
	if c.output == "json" {
		err = writeJSON(c.stdout, r)
	} else {
		err = r.writeTable(c.stdout)
	}
	if err != nil {
		return c.fail(err)
	}
	if r.Leaks > 0 {
		return exitFinding
	}
	return exitOK
}

// takeCensus lists the owned instances first and reads the store second,
// as the sweeper does, so a row inserted before its launch is seen.
func takeCensus(ctx context.Context, c *cli, g guardFlags, p prices) (*report, error) {
	owned, err := c.cloud.Owned(ctx)
	if err != nil {
		return nil, err
	}
	live, iids, rids := census.Live(owned, g.resourceTag)
	known, err := c.store.Known(ctx, rids, iids)
	if err != nil {
		return nil, err
	}
	due, err := c.store.Pending(ctx, pendingScan)
	if err != nil {
		return nil, err
	}
	removedHolds := map[string]bool{}
	for _, d := range due {
		removedHolds[d.InstanceID] = true
	}
	stats, err := c.store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	failures, err := c.events.List(ctx, events.Filter{Type: events.TypeReapFailed, Limit: ledgerScan})
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

	r := &report{At: known.Now, Owner: c.owner, Table: c.table.Name, PriceNote: priceNote, Permanent: []permanentRow{}, Unpriced: []string{}}
	typeNames := map[string]bool{}
	for _, in := range live {
		if in.Type != "" {
			typeNames[in.Type] = true
		}
	}
	cpus, err := vcpus(ctx, c.ec2, slices.Sorted(maps.Keys(typeNames)))
	if err != nil {
		r.Warnings = append(r.Warnings, fmt.Sprintf("vCPU counts unknown: %v", err))
	}
	totals := map[string]*classTotal{}
	for _, cl := range classes {
		totals[cl] = &classTotal{Class: cl, Leak: leakClasses[cl]}
	}
	unpriced := map[string]bool{}
	for _, in := range live {
		rid := in.Tags[g.resourceTag]
		cl := classify(in, rid, known, removedHolds, g)
		if leakClasses[cl] {
			if f, ok := lastFailure[in.ID]; ok && f.Payload["error_code"] == "OperationNotPermitted" {
				cl = classProtected
			}
		}
		price, priced := p[in.Type]
		if !priced {
			unpriced[in.Type] = true
		}
		row := instanceRow{
			InstanceID: in.ID, Class: cl, ResourceID: rid, State: in.State, Type: in.Type,
			LaunchedAt: in.LaunchedAt.UTC(), Age: age(known.Now, in.LaunchedAt), VCPUs: cpus[in.Type], USDPerH: price,
		}
		r.Instances = append(r.Instances, row)
		t := totals[cl]
		t.Instances++
		t.VCPUs += row.VCPUs
		t.USDPerH += price
		if leakClasses[cl] {
			r.Leaks++
			r.LeakUSDPerHour += price
		}
		if f, ok := lastFailure[in.ID]; ok && leakClasses[cl] && f.Payload["permanent"] == true {
			code, _ := f.Payload["error_code"].(string)
			msg, _ := f.Payload["error"].(string)
			r.Permanent = append(r.Permanent, permanentRow{InstanceID: in.ID, ResourceID: f.Subject, ErrorCode: code, Error: msg, At: f.At.UTC()})
		}
	}
	for _, cl := range classes {
		r.Classes = append(r.Classes, *totals[cl])
	}
	slices.SortFunc(r.Instances, func(a, b instanceRow) int {
		if d := slices.Index(classes, a.Class) - slices.Index(classes, b.Class); d != 0 {
			return d
		}
		return a.LaunchedAt.Compare(b.LaunchedAt)
	})
	r.Unpriced = slices.Sorted(maps.Keys(unpriced))
	r.Backlog = backlog{Pending: stats.Pending, Permanent: stats.Permanent, Acknowledged: stats.Acknowledged,
		OldestPending: stats.OldestPending.Round(time.Second).String()}
	return r, nil
}

// classify sorts one live owned instance, as the sweeper would see it.
// A removed row holds it when the row is due in the store's Pending, or
// when its resource tag names a removed row and some row holds it.
func classify(in teardown.Instance, rid string, known store.Known, removedHolds map[string]bool, g guardFlags) string {
	a := known.Now.Sub(in.LaunchedAt)
	switch {
	case known.Held[in.ID] && (removedHolds[in.ID] || rid != "" && known.Removed[rid]):
		return classRemovedRunning
	case known.Held[in.ID]:
		return classHeld
	}
	if _, keep := in.Tags[g.keepTag]; keep {
		return classKept
	}
	switch {
	case rid != "" && known.Provisioning[rid] && (in.LaunchedAt.IsZero() || a < g.provisionTimeout):
		return classProvisioning
	case rid != "" && known.Provisioning[rid]:
		return classStuckProvisioning
	case rid != "" && known.Removed[rid]:
		return classRowGone // its row says it is deleted: no age makes it in use
	case in.LaunchedAt.IsZero() || a < g.minAge:
		return classRecent
	}
	return classRowGone
}

func age(now, launched time.Time) string {
	if launched.IsZero() {
		return "unknown"
	}
	return now.Sub(launched).Round(time.Second).String()
}

func (r *report) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "%d owned instances, %d leaking (%s $%.4f/h); $ figures are %s\n\n",
		len(r.Instances), r.Leaks, "estimated", r.LeakUSDPerHour, priceNote)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tLEAK\tINSTANCES\tVCPUS\tEST $/H")
	for _, t := range r.Classes {
		leak := ""
		if t.Leak {
			leak = "leak"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.4f\n", t.Class, leak, t.Instances, t.VCPUs, t.USDPerH)
	}
	tw.Flush()
	if r.Leaks > 0 {
		fmt.Fprintln(w, "\nleaking instances:")
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tCLASS\tRESOURCE\tTYPE\tAGE\tEST $/H")
		for _, in := range r.Instances {
			if leakClasses[in.Class] {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.4f\n", in.InstanceID, in.Class, in.ResourceID, in.Type, in.Age, in.USDPerH)
			}
		}
		tw.Flush()
	}
	b := r.Backlog
	fmt.Fprintf(w, "\npending backlog: %d rows (oldest %s), %d permanent, %d acknowledged\n", b.Pending, b.OldestPending, b.Permanent, b.Acknowledged)
	for _, p := range r.Permanent {
		fmt.Fprintf(w, "permanent leak: %s (row %s): %s %s\n", p.InstanceID, p.ResourceID, p.ErrorCode, p.Error)
	}
	if len(r.Unpriced) > 0 {
		fmt.Fprintf(w, "no price for: %v (counted as $0)\n", r.Unpriced)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
