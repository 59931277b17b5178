package audit

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/leakless/leakless/teardown"
)

// WriteTable writes the report for a terminal: the class totals, the
// leaking instances, the dependents by class and those left behind, the
// backlog and the permanent leaks.
func (r *Report) WriteTable(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "%d owned instances, %d leaking (estimated $%.4f/h); $ figures are %s\n\n",
		len(r.Instances), r.Leaks, r.LeakUSDPerHour, r.PriceNote)
	tw := tabwriter.NewWriter(ew, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tLEAK\tINSTANCES\tVCPUS\tEST $/H")
	for _, t := range r.Classes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.4f\n", t.Class, leakLabel(t.Leak), t.Instances, t.VCPUs, t.USDPerH)
	}
	tw.Flush()
	if r.Leaks > 0 {
		fmt.Fprintln(ew, "\nleaking instances:")
		tw = tabwriter.NewWriter(ew, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tCLASS\tRESOURCE\tTYPE\tAGE\tEST $/H")
		for _, in := range r.Instances {
			if IsLeak(in.Class) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.4f\n", in.InstanceID, in.Class, in.ResourceID, in.Type, in.Age, in.USDPerH)
			}
		}
		tw.Flush()
	}
	r.writeDependents(ew)
	b := r.Backlog
	fmt.Fprintf(ew, "\npending backlog: %d rows (oldest %s), %d permanent, %d acknowledged\n", b.Pending, b.OldestPending, b.Permanent, b.Acknowledged)
	for _, p := range r.Permanent {
		fmt.Fprintf(ew, "permanent leak: %s (row %s): %s %s\n", p.InstanceID, p.ResourceID, p.ErrorCode, p.Error)
	}
	if len(r.Unpriced) > 0 {
		fmt.Fprintf(ew, "no price for: %v (counted as $0)\n", r.Unpriced)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(ew, "warning: %s\n", warn)
	}
	return ew.err
}

// writeDependents writes the dependents' classes and those left behind,
// when the census took dependents.
func (r *Report) writeDependents(w io.Writer) {
	if r.DependentClasses == nil {
		return
	}
	fmt.Fprintf(w, "\n%d owned dependents, %d left behind (estimated $%.4f/h)\n", len(r.Dependents), r.DependentLeaks, r.DependentLeakUSDPerHour)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPENDENT CLASS\tLEAK\tVOLUMES\tGIB\tINTERFACES\tELASTIC IPS\tSPOT REQUESTS\tEST $/H")
	for _, t := range r.DependentClasses {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.4f\n", t.Class, leakLabel(t.Leak), t.Volumes, t.VolumeGiB, t.Interfaces, t.Addresses, t.SpotRequests, t.USDPerH)
	}
	tw.Flush()
	if r.DependentLeaks == 0 {
		return
	}
	fmt.Fprintln(w, "\ndependents left behind:")
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tCLASS\tRESOURCE\tSTATE\tSIZE\tAGE\tEST $/H")
	for _, d := range r.Dependents {
		if !IsDependentLeak(d.Class) {
			continue
		}
		size := ""
		if d.Kind == teardown.DependentVolume {
			size = fmt.Sprintf("%d GiB %s", d.SizeGiB, d.Type)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.4f\n", d.Kind, d.ID, d.Class, d.ResourceID, d.State, size, d.Age, d.USDPerH)
	}
	tw.Flush()
}

// leakLabel is a table's LEAK column.
func leakLabel(leak bool) string {
	if leak {
		return "leak"
	}
	return ""
}

// errWriter keeps the first write error, so the table is written without
// a check after every line.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
