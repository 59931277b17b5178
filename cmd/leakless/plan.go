package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"text/tabwriter"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/audit"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
)

// planVersion is the plan file's format version.
const planVersion = 1

// Plan is what one dry-run sweep would do, as plan writes it and apply
// reads it.
type Plan struct {
	Version   int               `json:"version"`
	CreatedAt time.Time         `json:"created_at"`
	Owner     map[string]string `json:"owner"`
	Table     string            `json:"table"`
	RowGone   bool              `json:"row_gone"`
	// Aborted is why the sweep's inventory step would terminate nothing
	// (a breaker tripped, or the inventory failed), or "".
	Aborted string   `json:"aborted,omitempty"`
	Actions []Action `json:"actions"`
}

// Action is one instance the sweep would stop.
type Action struct {
	// Kind is "pending" (a removed row still holds it: the row is
	// re-driven and cleared) or "orphan" (no row holds it: it is
	// terminated from the inventory).
	Kind       string `json:"kind"`
	InstanceID string `json:"instance_id"`
	ResourceID string `json:"resource_id,omitempty"`
	// Reason is the sweeper's: row_removed, row_gone or provision_timeout.
	Reason   string `json:"reason"`
	State    string `json:"state,omitempty"`
	Age      string `json:"age,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
}

// Kinds of planned action.
const (
	kindPending = "pending"
	kindOrphan  = "orphan"
)

// planBatch is how many due rows the plan's sweep reads: a dry run
// reports one page a pass.
const planBatch = 1000

func plan(ctx context.Context, c *cli, args []string) int {
	fs := c.flags()
	var g guardFlags
	g.register(fs, c)
	fs.BoolVar(&g.rowGone, "row-gone", false, "also plan terminating owned instances no row explains, as the worker's -row-gone does")
	if err := c.parse(fs, args); err != nil {
		return c.fail(err)
	}
	if err := g.check(); err != nil {
		return c.fail(err)
	}
	defer c.close()
	if err := c.open(ctx, true); err != nil {
		return c.fail(err)
	}
	p, err := makePlan(ctx, c, g)
	if err != nil {
		return c.fail(err)
	}
	if err := writeJSON(c.stdout, p); err != nil {
		return c.fail(err)
	}
	if p.Aborted != "" {
		fmt.Fprintf(c.stderr, "leakless plan: the sweep's inventory step would terminate nothing: %s\n", p.Aborted)
	}
	return exitOK
}

// makePlan runs dry-run sweeps, as many as the sweeper's confirmation
// needs, and collects what they would stop. A dry run touches nothing:
// no stop, no write to the store. With -row-gone one pass confirms a
// candidate: the review and apply's re-check stand for the second.
func makePlan(ctx context.Context, c *cli, g guardFlags) (*Plan, error) {
	sink := events.NewMemory()
	guard := sweeper.RowGone{MinAge: g.minAge, ProvisionTimeout: g.provisionTimeout, ResourceTag: g.resourceTag, KeepTag: g.keepTag, ConfirmPasses: 1}
	opts := []sweeper.Option{sweeper.WithDryRun(), sweeper.WithEvents(sink), sweeper.WithBatchSize(planBatch)}
	passes := 1
	if g.rowGone {
		opts = append(opts, sweeper.WithRowGone(c.cloud, guard))
	} else {
		opts = append(opts, sweeper.WithInventory(c.cloud))
		passes = sweeper.DefaultConfirmPasses
	}
	sw, err := sweeper.New(c.store, c.cloud, opts...)
	if err != nil {
		return nil, err
	}
	var rep sweeper.Report
	for range passes {
		if rep, err = sw.SweepOnce(ctx); err != nil {
			return nil, err
		}
	}
	p := &Plan{Version: planVersion, CreatedAt: time.Now().UTC(), Owner: c.owner, Table: c.table.Name, RowGone: g.rowGone, Aborted: rep.Aborted, Actions: []Action{}}
	seen := map[string]int{}
	for _, e := range sink.Events() {
		if e.Type != events.TypeDryRun {
			continue
		}
		str := func(k string) string { s, _ := e.Payload[k].(string); return s }
		a := Action{Kind: kindOrphan, InstanceID: str("instance_id"), ResourceID: str("resource_id"), Reason: str("reason"), State: str("state"), Age: str("age")}
		if str("action") == "stop" {
			a.Kind = kindPending
			a.Attempts, _ = e.Payload["attempts"].(int)
		}
		if i, ok := seen[a.InstanceID]; ok {
			p.Actions[i] = a // a later pass's view
			continue
		}
		seen[a.InstanceID] = len(p.Actions)
		p.Actions = append(p.Actions, a)
	}
	return p, nil
}

// outcome is what apply did with one planned action.
type outcome struct {
	Action
	// Result is "stopped", "refused" or "failed".
	Result string `json:"result"`
	// Why says why it was refused, or the stop's error.
	Why string `json:"why,omitempty"`
}

func apply(ctx context.Context, c *cli, args []string) int {
	fs := c.flags()
	var g guardFlags
	g.register(fs, c)
	file := fs.String("plan", "", "the plan file plan wrote (required)")
	if err := c.parse(fs, args); err != nil {
		return c.fail(err)
	}
	if *file == "" {
		return c.fail(errors.New("-plan FILE is required"))
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return c.fail(err)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return c.fail(fmt.Errorf("plan %s: %w", *file, err))
	}
	if p.Version != planVersion {
		return c.fail(fmt.Errorf("plan %s: version %d, want %d", *file, p.Version, planVersion))
	}
	defer c.close()
	if err := c.open(ctx, true); err != nil {
		return c.fail(err)
	}
	if !maps.Equal(p.Owner, c.owner) || p.Table != c.table.Name {
		return c.fail(fmt.Errorf("plan %s was made for owner %v and table %q, not %v and %q", *file, p.Owner, p.Table, c.owner, c.table.Name))
	}
	outs, err := applyPlan(ctx, c, g, p)
	if err != nil {
		return c.fail(err)
	}
	if c.output == "json" {
		err = writeJSON(c.stdout, outs)
	} else {
		tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tKIND\tRESOURCE\tRESULT\tWHY")
		for _, o := range outs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.InstanceID, o.Kind, o.ResourceID, o.Result, o.Why)
		}
		err = tw.Flush()
	}
	if err != nil {
		return c.fail(err)
	}
	for _, o := range outs {
		if o.Result != "stopped" {
			return exitFinding
		}
	}
	return exitOK
}

// applyPlan re-checks every planned action against the current state and
// stops exactly those still as planned: a pending row still removed, due
// and holding the instance; an orphan still live, owned, held by no row,
// not kept and not being provisioned.
func applyPlan(ctx context.Context, c *cli, g guardFlags, p Plan) ([]outcome, error) {
	outs := make([]outcome, len(p.Actions))
	due, err := c.store.Pending(ctx, audit.PendingScan)
	if err != nil {
		return nil, err
	}
	dueRows := map[string]store.Pending{}
	for _, d := range due {
		dueRows[d.ResourceID] = d
	}
	var ids, rids []string
	for _, a := range p.Actions {
		ids = append(ids, a.InstanceID)
		if a.ResourceID != "" {
			rids = append(rids, a.ResourceID)
		}
	}
	now, err := c.cloud.Describe(ctx, ids)
	if err != nil {
		return nil, err
	}
	current := map[string]teardown.Instance{}
	for _, in := range now {
		current[in.ID] = in
	}
	known, err := c.store.Known(ctx, rids, ids)
	if err != nil {
		return nil, err
	}
	var stop []string
	for i, a := range p.Actions {
		outs[i] = outcome{Action: a}
		why := refusal(a, dueRows, current, known, g)
		if why != "" {
			outs[i].Result, outs[i].Why = "refused", why
			continue
		}
		stop = append(stop, a.InstanceID)
	}
	results := teardown.StopAll(ctx, c.cloud, stop)
	var record []events.Event
	for i, a := range p.Actions {
		if outs[i].Result != "" {
			continue
		}
		err := results[a.InstanceID]
		if err != nil && !errors.Is(err, teardown.ErrGone) {
			outs[i].Result, outs[i].Why = "failed", err.Error()
			continue
		}
		outs[i].Result = "stopped"
		payload := map[string]any{"instance_id": a.InstanceID, "resource_id": a.ResourceID, "reason": a.Reason, "source": "leakless apply"}
		typ := events.TypeRowGoneTerminated
		if a.Kind == kindPending {
			typ = events.TypeReaped
			cleared, err := c.store.Reaped(ctx, dueRows[a.ResourceID])
			if err != nil {
				outs[i].Why = fmt.Sprintf("stopped; the row could not be cleared (the sweeper will): %v", err)
			}
			payload["cleared"] = cleared
		}
		record = append(record, events.Event{Type: typ, Subject: a.ResourceID, Payload: payload, At: time.Now()})
	}
	if err := events.EmitAll(ctx, c.events, record); err != nil {
		fmt.Fprintf(c.stderr, "leakless apply: the ledger did not record the stops: %v\n", err)
	}
	return outs, nil
}

// refusal says why action a must not be applied now, or "".
func refusal(a Action, due map[string]store.Pending, current map[string]teardown.Instance, known store.Known, g guardFlags) string {
	if a.Kind == kindPending {
		if d, ok := due[a.ResourceID]; !ok || d.InstanceID != a.InstanceID {
			return "no longer pending: the row was cleared, changed or restored, or is not due (backing off or in its redrive grace)"
		}
		return ""
	}
	if a.Kind != kindOrphan {
		return fmt.Sprintf("unknown kind %q", a.Kind)
	}
	in, ok := current[a.InstanceID]
	switch {
	case !ok:
		return "EC2 no longer lists it as ours"
	case in.State == "shutting-down" || in.State == "terminated":
		return "already " + in.State
	case known.Held[a.InstanceID]:
		return "a row holds it now"
	}
	if _, keep := in.Tags[g.keepTag]; keep {
		return "kept by the " + g.keepTag + " tag"
	}
	if a.ResourceID != "" && known.Provisioning[a.ResourceID] && a.Reason != sweeper.ReasonProvisionTimeout {
		return "its row is back and provisioning it"
	}
	if a.Reason == sweeper.ReasonRowRemoved && !known.Removed[a.ResourceID] {
		return "its row is no longer removed"
	}
	return ""
}
