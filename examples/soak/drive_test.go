package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
)

// rowGoneEvery: one row-gone instance is launched per this many lifecycles.
const rowGoneEvery = 20

// holdFor is how long a workspace that is used before its delete lives:
// long enough for its instance to have propagated.
const holdFor = propagationDelay + 500*time.Millisecond

// driver runs workspace lifecycles against the API replicas, picking a
// replica at random for every request.
type driver struct {
	w    *world
	n    int64 // lifecycles in the run
	errs tally // requests that got no answer at all, by error
}

// run drives n lifecycles on the given number of workers and returns when
// all are done.
func (d *driver) run(ctx context.Context, n, workers int, seed uint64) {
	d.n = int64(n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := range workers {
		rnd := rand.New(rand.NewPCG(seed, uint64(k)))
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				d.lifecycle(ctx, rnd, i)
			}
		})
	}
	wg.Wait()
}

// lifecycle creates a workspace, nests children (and grandchildren) under
// it, sometimes deletes a child first, deletes the root (sometimes while a
// child is still being created under it), and deletes it again; every
// leftoverEvery-th then leaves a volume detached behind the root.
func (d *driver) lifecycle(ctx context.Context, rnd *rand.Rand, i int64) {
	if i%rowGoneEvery == 0 {
		d.w.chaos.launchRowGone()
	}
	root := d.create(ctx, rnd, "")
	if root == "" {
		return
	}
	// A client whose create died after the launch sometimes never comes
	// back: only the provisioning timeout reaps that instance. Only in the
	// first half of the run, so that the timeout passes before the drain.
	if d.w.chaos.wasKilled(root) && i <= d.n/2 && rnd.IntN(2) == 0 {
		d.w.chaos.count(faultWalkedAway, 1)
		return
	}
	// Most workspaces are used a while before they are deleted, past the
	// time EC2 takes to show a new instance; the rest are deleted at once
	// and meet NotFound.
	created, hold := time.Now(), rnd.IntN(4) != 0
	var children []string
	for range rnd.IntN(4) {
		c := d.create(ctx, rnd, root)
		if c == "" {
			continue
		}
		children = append(children, c)
		if rnd.IntN(3) == 0 {
			d.create(ctx, rnd, c)
		}
	}
	if hold {
		sleep(ctx, holdFor-time.Since(created))
	}
	if len(children) > 0 && rnd.IntN(5) == 0 {
		d.remove(ctx, rnd, children[0])
	}
	if rnd.IntN(10) == 0 {
		// Nest while deleting: the child's launch races the cascade.
		var wg sync.WaitGroup
		crnd := rand.New(rand.NewPCG(rnd.Uint64(), rnd.Uint64()))
		wg.Go(func() { d.create(ctx, crnd, root) })
		d.remove(ctx, rnd, root)
		wg.Wait()
	} else {
		d.remove(ctx, rnd, root)
	}
	d.remove(ctx, rnd, root)
	if i%leftoverEvery == 0 {
		d.w.chaos.leaveVolume(root)
	}
}

// create POSTs a workspace under parent and returns the id of the row it
// wrote, if any: on success, and on the failures whose answer names the
// row (a launch that failed, an instance that could not be recorded).
func (d *driver) create(ctx context.Context, rnd *rand.Rand, parent string) string {
	body := "{}"
	if parent != "" {
		body = fmt.Sprintf(`{"parent_id":%q}`, parent)
	}
	// A create that wrote no row (the database was down) is retried, as a
	// client would, for up to a few seconds.
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		status, raw, err := d.do(ctx, rnd, http.MethodPost, "/workspaces", body)
		if err != nil {
			return ""
		}
		var out struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(raw, &out)
		if out.ID != "" || status != http.StatusInternalServerError || wait > 2*time.Second || !sleep(ctx, wait) {
			return out.ID
		}
	}
}

// remove DELETEs a workspace until its tree is marked removed: a 204, or a
// 500 naming instances still held (the retry of which is the lifecycle's
// second DELETE and the sweepers' business). A 500 from a failed removal
// itself is retried a few times.
func (d *driver) remove(ctx context.Context, rnd *rand.Rand, id string) {
	for range 20 {
		status, raw, err := d.do(ctx, rnd, http.MethodDelete, "/workspaces/"+id, "")
		if err != nil {
			return
		}
		var failure workspaces.DeleteFailure
		_ = json.Unmarshal(raw, &failure)
		if status != http.StatusInternalServerError || len(failure.Pending) > 0 {
			return
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func (d *driver) do(ctx context.Context, rnd *rand.Rand, method, path, body string) (int, []byte, error) {
	srv := d.w.api[rnd.IntN(len(d.w.api))]
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, bytes.NewBufferString(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		d.errs.add(err.Error(), 1)
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		d.errs.add(err.Error(), 1)
	}
	return resp.StatusCode, raw, err
}
