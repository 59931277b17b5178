package main

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// node is one workspace of a tree.
type node struct {
	parent     int // index in the tree; -1 for the root
	depth      int // 1 for the root
	id         string
	instanceID string
}

// tree is one root workspace and its descendants, parents first.
type tree struct{ nodes []*node }

// shapes are the trees the demo builds, in turn, as parent indexes: a lone
// workspace; a parent and child; and three levels deep with a second child.
var shapes = [][]int{{-1}, {-1, 0}, {-1, 0, 1, 0}}

// plan lays out n workspaces as trees of the shapes above.
func plan(n int) []*tree {
	var trees []*tree
	for i := 0; n > 0; i++ {
		shape := shapes[i%len(shapes)]
		t := &tree{}
		for _, p := range shape[:min(len(shape), n)] {
			depth := 1
			if p >= 0 {
				depth = t.nodes[p].depth + 1
			}
			t.nodes = append(t.nodes, &node{parent: p, depth: depth})
		}
		n -= len(t.nodes)
		trees = append(trees, t)
	}
	return trees
}

// deepest is the tree's deepest node (the last of them).
func (t *tree) deepest() *node {
	d := t.nodes[0]
	for _, n := range t.nodes {
		if n.depth >= d.depth {
			d = n
		}
	}
	return d
}

// pickTrouble chooses the tree that holds the protected instance (the first
// three levels deep, else the deepest) and up to k other trees whose every
// stop attempt will fail.
func pickTrouble(trees []*tree, k int) (protected int, unlucky map[int]bool) {
	for i, t := range trees {
		if t.deepest().depth > trees[protected].deepest().depth {
			protected = i
		}
		if t.deepest().depth >= 3 {
			protected = i
			break
		}
	}
	unlucky = map[int]bool{}
	for i := range trees {
		if len(unlucky) == k {
			break
		}
		if i != protected {
			unlucky[i] = true
		}
	}
	return protected, unlucky
}

// launchTrees creates every tree through the API, trees in parallel,
// parents before their children.
func (d *demo) launchTrees(ctx context.Context, trees []*tree) error {
	total := 0
	for _, t := range trees {
		total += len(t.nodes)
	}
	prog := d.progress("launched", total)
	return d.parallel(ctx, len(trees), func(ctx context.Context, i int) error {
		for _, n := range trees[i].nodes {
			parentID := ""
			if n.parent >= 0 {
				parentID = trees[i].nodes[n.parent].id
			}
			ws, err := d.api.create(ctx, parentID)
			if err != nil {
				return err
			}
			n.id, n.instanceID = ws.ID, ws.InstanceID
			prog()
		}
		return nil
	})
}

// launchLive creates the workspaces that are never deleted.
func (d *demo) launchLive(ctx context.Context) error {
	err := d.parallel(ctx, d.cfg.Live, func(ctx context.Context, _ int) error {
		_, err := d.api.create(ctx, "")
		return err
	})
	if err == nil && d.cfg.Live > 0 {
		d.say("   launched %d workspaces to keep running: the sweeper must not touch them", d.cfg.Live)
	}
	return err
}

// failedDelete is a DELETE that answered 500.
type failedDelete struct {
	root string
	fail *workspaces.DeleteFailure
}

// faults are the 5xx answers the unlucky deletes get, in turn: EC2's own
// and a load balancer's bare 502.
var faults = []ec2fake.Fault{
	{Code: "InternalError"},
	{Code: "ServiceUnavailable"},
	{Code: "Unavailable"},
	{Status: http.StatusBadGateway},
}

// deleteAll deletes every tree through the API. The unlucky ones go first,
// one at a time, each with every one of its stop attempts failing; then the
// rest in parallel, with a share of calls throttled.
func (d *demo) deleteAll(ctx context.Context, trees []*tree, unlucky map[int]bool) ([]failedDelete, error) {
	var (
		mu       sync.Mutex
		failed   []failedDelete
		accepted int // answered 202: stopped, dependents still finishing
	)
	prog := d.progress("deleted", len(trees))
	remove := func(ctx context.Context, t *tree) error {
		status, fail, err := d.api.remove(ctx, t.nodes[0].id)
		if err != nil {
			return err
		}
		mu.Lock()
		switch status {
		case http.StatusNoContent:
		case http.StatusAccepted:
			accepted++
		default:
			failed = append(failed, failedDelete{root: t.nodes[0].id, fail: fail})
		}
		mu.Unlock()
		prog()
		return nil
	}
	var rest []*tree
	k := 0
	for i, t := range trees {
		if !unlucky[i] {
			rest = append(rest, t)
			continue
		}
		d.cloud.Fake.FailWith("TerminateInstances", faults[k%len(faults)], d.cfg.Attempts)
		k++
		if err := remove(ctx, t); err != nil {
			return nil, err
		}
	}
	if d.cloud.Fake != nil {
		d.cloud.Fake.SetErrorRate("TerminateInstances", "RequestLimitExceeded", d.cfg.ThrottleRate)
	}
	err := d.parallel(ctx, len(rest), func(ctx context.Context, i int) error { return remove(ctx, rest[i]) })
	if err != nil {
		return nil, err
	}

	d.say("   %d deletes answered 204; %d answered 202 (instances stopped, their volumes, Elastic IPs and interfaces freed only once EC2 has finished the termination: the sweeper finishes them); %d answered 500, each naming what it still holds and saying it is safe to retry:",
		len(trees)-len(failed)-accepted, accepted, len(failed))
	for i, f := range failed {
		if i == 8 {
			d.say("     … and %d more", len(failed)-i)
			break
		}
		held := make([]string, len(f.fail.Pending))
		for j, p := range f.fail.Pending {
			held[j] = p.InstanceID
		}
		d.say("     DELETE %s → 500 %q, still held: %s", short(f.root), f.fail.Error, strings.Join(held, ", "))
	}
	return failed, nil
}

// showLedger prints the durable events the failed deletes left, read back
// through GET /events.
func (d *demo) showLedger(ctx context.Context) error {
	list, err := d.api.events(ctx, "teardown.retry_exhausted")
	if err != nil {
		return err
	}
	d.say("   GET /events?type=teardown.retry_exhausted: %d durable event(s), one per instance a DELETE gave up on:", len(list))
	for i, e := range list {
		if i == 8 {
			d.say("     … and %d more", len(list)-i)
			break
		}
		d.say("     %s  workspace %.8s  attempts=%v cause=%v error_code=%v", e.Payload["instance_id"], e.Subject, e.Payload["attempts"], e.Payload["cause"], orNone(e.Payload["error_code"]))
	}
	return nil
}

func orNone(v any) any {
	if v == nil || v == "" {
		return "(none)"
	}
	return v
}

// parallel runs f(0..n-1) on up to Concurrency goroutines and returns the
// first error; the others are cancelled by it.
func (d *demo) parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(d.cfg.Concurrency, n) {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// progress returns a function to call once per item done; it prints a line
// at every quarter of total.
func (d *demo) progress(verb string, total int) func() {
	var mu sync.Mutex
	done, shown := 0, 0
	return func() {
		mu.Lock()
		defer mu.Unlock()
		done++
		if quarter := done * 4 / total; quarter > shown {
			shown = quarter
			d.say("   %s %d/%d", verb, done, total)
		}
	}
}
