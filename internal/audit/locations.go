package audit

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// Located is one location's report.
type Located struct {
	Location string  `json:"location"`
	Report   *Report `json:"report"`
}

// Locations is a census of several locations, each with its own report,
// and their total class by class.
type Locations struct {
	Locations []Located    `json:"locations"`
	Total     []ClassTotal `json:"total_classes"`
	Leaks     int          `json:"leaks"`
	// LeakUSDPerHour is the estimated cost of every location's leaks.
	LeakUSDPerHour float64 `json:"estimated_leak_usd_per_hour"`

	// The dependents' totals, when the censuses took dependents.
	DependentTotal []DependentTotal `json:"total_dependent_classes,omitempty"`
	DependentLeaks int              `json:"dependent_leaks"`
	// DependentLeakUSDPerHour is the estimated cost of every location's
	// dependents left behind.
	DependentLeakUSDPerHour float64 `json:"estimated_dependent_leak_usd_per_hour"`
}

// Sum totals the reports of locs, in the order given.
func Sum(locs []Located) *Locations {
	s := &Locations{Locations: locs}
	for _, cl := range Classes {
		t := ClassTotal{Class: cl, Leak: IsLeak(cl)}
		for _, l := range locs {
			c := l.Report.Class(cl)
			t.Instances += c.Instances
			t.VCPUs += c.VCPUs
			t.USDPerH += c.USDPerH
		}
		s.Total = append(s.Total, t)
	}
	for _, l := range locs {
		s.Leaks += l.Report.Leaks
		s.LeakUSDPerHour += l.Report.LeakUSDPerHour
		s.DependentLeaks += l.Report.DependentLeaks
		s.DependentLeakUSDPerHour += l.Report.DependentLeakUSDPerHour
	}
	if slices.ContainsFunc(locs, func(l Located) bool { return l.Report.DependentClasses != nil }) {
		for _, cl := range DependentClasses {
			t := DependentTotal{Class: cl, Leak: IsDependentLeak(cl)}
			for _, l := range locs {
				t.sum(l.Report.DependentClass(cl))
			}
			s.DependentTotal = append(s.DependentTotal, t)
		}
	}
	return s
}

// WriteTable writes each location's report under its name, then one
// table of the classes by location with the total.
func (s *Locations) WriteTable(w io.Writer) error {
	ew := &errWriter{w: w}
	for _, l := range s.Locations {
		fmt.Fprintf(ew, "== %s\n", l.Location)
		if err := l.Report.WriteTable(ew); err != nil {
			return err
		}
		fmt.Fprintln(ew)
	}
	fmt.Fprintf(ew, "== every location: %d leaking (estimated $%.4f/h)\n\n", s.Leaks, s.LeakUSDPerHour)
	tw := tabwriter.NewWriter(ew, 2, 8, 2, ' ', 0)
	fmt.Fprint(tw, "CLASS\tLEAK")
	for _, l := range s.Locations {
		fmt.Fprintf(tw, "\t%s", l.Location)
	}
	fmt.Fprintln(tw, "\tTOTAL\tVCPUS\tEST $/H")
	for _, t := range s.Total {
		fmt.Fprintf(tw, "%s\t%s", t.Class, leakLabel(t.Leak))
		for _, l := range s.Locations {
			fmt.Fprintf(tw, "\t%d", l.Report.Class(t.Class).Instances)
		}
		fmt.Fprintf(tw, "\t%d\t%d\t%.4f\n", t.Instances, t.VCPUs, t.USDPerH)
	}
	tw.Flush()
	if s.DependentTotal != nil {
		fmt.Fprintf(ew, "\n== every location: %d dependents left behind (estimated $%.4f/h)\n\n", s.DependentLeaks, s.DependentLeakUSDPerHour)
		tw = tabwriter.NewWriter(ew, 2, 8, 2, ' ', 0)
		fmt.Fprint(tw, "DEPENDENT CLASS\tLEAK")
		for _, l := range s.Locations {
			fmt.Fprintf(tw, "\t%s", l.Location)
		}
		fmt.Fprintln(tw, "\tTOTAL\tGIB\tEST $/H")
		for _, t := range s.DependentTotal {
			fmt.Fprintf(tw, "%s\t%s", t.Class, leakLabel(t.Leak))
			for _, l := range s.Locations {
				fmt.Fprintf(tw, "\t%d", l.Report.DependentClass(t.Class).Count())
			}
			fmt.Fprintf(tw, "\t%d\t%d\t%.4f\n", t.Count(), t.VolumeGiB, t.USDPerH)
		}
		tw.Flush()
	}
	return ew.err
}
