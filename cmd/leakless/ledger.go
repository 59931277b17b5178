package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/leakless/leakless/events"
)

// timeFlag is a point in time given as RFC 3339 or as a duration ago.
type timeFlag struct {
	t   *time.Time
	now func() time.Time
}

func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f timeFlag) Set(s string) error {
	if d, err := time.ParseDuration(s); err == nil {
		*f.t = f.now().Add(-d)
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("%q is neither an RFC 3339 time nor a duration ago", s)
	}
	*f.t = t
	return nil
}

func ledger(ctx context.Context, c *cli, args []string) int {
	fs := c.flags()
	var f events.Filter
	fs.StringVar(&f.Type, "type", "", "only events of this type, such as "+events.TypeReapFailed)
	fs.StringVar(&f.Subject, "subject", "", "only events about this row id")
	fs.Var(timeFlag{&f.Since, time.Now}, "since", "only events at or after this time (RFC 3339, or a duration ago such as 24h)")
	fs.Var(timeFlag{&f.Until, time.Now}, "until", "only events before this time (RFC 3339, or a duration ago)")
	fs.IntVar(&f.Limit, "limit", 50, "at most this many, the newest; 0 for all")
	fs.Int64Var(&f.Before, "before", 0, "continue a listing after the event with this id")
	if err := c.parse(fs, args); err != nil {
		return c.fail(err)
	}
	defer c.close()
	if err := c.open(ctx, false); err != nil {
		return c.fail(err)
	}
	es, err := c.events.List(ctx, f)
	if err != nil {
		return c.fail(err)
	}
	if es == nil {
		es = []events.Event{}
	}
	if c.output == "json" {
		err = writeJSON(c.stdout, es)
	} else {
		tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAT\tTYPE\tSUBJECT\tINSTANCE\tDETAIL")
		for _, e := range es {
			str := func(k string) string { s, _ := e.Payload[k].(string); return s }
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.At.UTC().Format(time.RFC3339), e.Type, e.Subject,
				str("instance_id"), words(str("reason"), str("error_code"), str("cause")))
		}
		err = tw.Flush()
	}
	if err != nil {
		return c.fail(err)
	}
	return exitOK
}

var _ flag.Value = timeFlag{}
