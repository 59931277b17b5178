package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/internal/audit"
)

// census is what became of every instance carrying the run's owner tag,
// judged against the workspaces table: an instance is in use when a live
// row holds it, or a live row still provisioning carries its id.
type census struct {
	launched   int
	terminated int
	inUse      int
	leaked     []string // running, and no live row uses it
	wrong      []string // terminated, though a live row uses it
}

// drained reports whether nothing is left to fix but the protected
// instance.
func (c census) drained(protected string) bool {
	return len(c.leaked) == 0 || len(c.leaked) == 1 && c.leaked[0] == protected
}

func (d *demo) census(ctx context.Context) (census, error) {
	var c census
	key := ownerKey
	pages := ec2.NewDescribeInstancesPaginator(d.cloud.Client, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("tag:" + key), Values: []string{d.owner[key]}}},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return c, fmt.Errorf("census: %w", err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				if err := d.count(ctx, &c, inst); err != nil {
					return c, err
				}
			}
		}
	}
	slices.Sort(c.leaked)
	slices.Sort(c.wrong)
	return c, nil
}

func (d *demo) count(ctx context.Context, c *census, inst types.Instance) error {
	id := aws.ToString(inst.InstanceId)
	var resourceID string
	for _, t := range inst.Tags {
		if aws.ToString(t.Key) == workspaces.DefaultResourceTag {
			resourceID = aws.ToString(t.Value)
		}
	}
	inUse := false
	if resourceID != "" {
		ws, err := d.db.Rows.Get(ctx, resourceID)
		switch {
		case errors.Is(err, workspaces.ErrNotFound):
		case err != nil:
			return fmt.Errorf("census: %w", err)
		default:
			inUse = ws.Status != workspaces.StatusRemoved &&
				(ws.InstanceID == id || ws.InstanceID == "" && ws.Status == workspaces.StatusProvisioning)
		}
	}
	c.launched++
	gone := false
	if inst.State != nil {
		gone = inst.State.Name == types.InstanceStateNameTerminated || inst.State.Name == types.InstanceStateNameShuttingDown
	}
	switch {
	case gone && inUse:
		c.terminated++
		c.wrong = append(c.wrong, id)
	case gone:
		c.terminated++
	case inUse:
		c.inUse++
	default:
		c.leaked = append(c.leaked, id)
	}
	return nil
}

// Result is what a run of the demo found.
type Result struct {
	Launched          int      // instances carrying the run's owner tag
	Terminated        int      // of those, terminated
	InUse             int      // running, and used by a live workspace
	Leaked            []string // running, used by no live workspace
	WronglyTerminated []string // terminated while a live workspace used it
	Protected         string   // the termination-protected instance
	ProtectedOnRecord bool     // its failure is recorded as permanent (sweeper.reap_failed)
	Deletes           int      // DELETE requests made (one per tree)
	DeletesFailed     int      // of those, answered 500
	Passes            int      // sweeper passes run
	DependentsLeft    int      // volumes, Elastic IPs, interfaces and live spot requests carrying the owner tag
	Events            map[string]int
	Elapsed           time.Duration
	Audit             *audit.Report // the closing audit, as `leakless audit` reports it
}

// Err says what went wrong, or nil when the run ended as it must: nothing
// leaked but the protected instance, whose failure is on record, and
// nothing in use terminated.
func (r Result) Err() error {
	var errs []error
	for _, id := range r.Leaked {
		if id != r.Protected {
			errs = append(errs, fmt.Errorf("%s leaked: running with no live workspace", id))
		}
	}
	if r.Protected != "" && !slices.Contains(r.Leaked, r.Protected) {
		errs = append(errs, fmt.Errorf("protected instance %s is not reported as leaked", r.Protected))
	}
	if r.Protected != "" && !r.ProtectedOnRecord {
		errs = append(errs, fmt.Errorf("protected instance %s has no permanent %s event", r.Protected, events.TypeReapFailed))
	}
	for _, id := range r.WronglyTerminated {
		errs = append(errs, fmt.Errorf("%s was terminated while a live workspace used it", id))
	}
	if r.DependentsLeft > 0 {
		errs = append(errs, fmt.Errorf("%d dependents left behind", r.DependentsLeft))
	}
	return errors.Join(errs...)
}

func (d *demo) result(ctx context.Context, c census, failed []failedDelete, deletes, passes int) (Result, error) {
	onRecord, err := d.protectedOnRecord(ctx)
	if err != nil {
		return Result{}, err
	}
	left, err := d.dependentsLeft(ctx)
	if err != nil {
		return Result{}, err
	}
	all, err := d.db.Ledger.List(ctx, events.Filter{})
	if err != nil {
		return Result{}, err
	}
	counts := map[string]int{}
	for _, e := range all {
		counts[e.Type]++
	}
	return Result{
		Launched: c.launched, Terminated: c.terminated, InUse: c.inUse,
		Leaked: c.leaked, WronglyTerminated: c.wrong,
		Protected: d.protected, ProtectedOnRecord: onRecord,
		Deletes: deletes, DeletesFailed: len(failed), Passes: passes, DependentsLeft: left,
		Events: counts, Elapsed: time.Since(d.start),
	}, nil
}

// print writes the final table.
func (r Result) print(out io.Writer) {
	row := func(label string, n int, note string) {
		fmt.Fprintln(out, strings.TrimRight(fmt.Sprintf("   %-18s %5d  %s", label, n, note), " "))
	}
	row("launched", r.Launched, "instances carrying this run's owner tag")
	row("terminated", r.Terminated, fmt.Sprintf("%d deletes (%d answered 500), then %d sweeper passes", r.Deletes, r.DeletesFailed, r.Passes))
	row("in use", r.InUse, "running for a live workspace, left alone")
	var notes []string
	for _, id := range r.Leaked {
		if id == r.Protected {
			note := id + ": termination protection, a permanent leak"
			if r.ProtectedOnRecord {
				note += " on record (" + events.TypeReapFailed + ")"
			} else {
				note += " NOT on record"
			}
			notes = append(notes, note)
		} else {
			notes = append(notes, id+": LEAKED")
		}
	}
	row("still leaked", len(r.Leaked), strings.Join(notes, "; "))
	row("wrongly terminated", len(r.WronglyTerminated), strings.Join(r.WronglyTerminated, ", "))
	row("dependents left", r.DependentsLeft, "volumes, Elastic IPs, interfaces, live spot requests with the owner tag (goal 0)")
	total := 0
	var byType []string
	for _, typ := range slices.Sorted(maps.Keys(r.Events)) {
		total += r.Events[typ]
		byType = append(byType, fmt.Sprintf("%s %d", typ, r.Events[typ]))
	}
	row("durable events", total, strings.Join(byType, ", "))
}
