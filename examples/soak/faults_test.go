package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// Fault rates on every EC2 call the system under test makes, the share of
// instances that are termination-protected, the share of launches that lose
// the owner tag, and the share of creates whose process dies between launch
// and record.
const (
	rateServerError = 0.20
	rateThrottle    = 0.10
	rateLatency     = 0.05
	rateProtected   = 0.01
	rateUntagged    = 0.01
	rateInterrupted = 0.01
)

// propagationDelay is how long the fake keeps each launched instance
// invisible; notFoundSettle, the sweepers' settle window, must outlast it,
// or a row would be cleared while its instance, not yet visible, runs.
const (
	propagationDelay = 2 * time.Second
	notFoundSettle   = 5 * time.Second
)

// The kinds of fault counted in the figures.
//
// Replica clocks are not skewed: no decision reads a replica's clock (ages,
// due times, NotFound runs and lease expiry are all measured by the
// database's now()), so in one process there is no clock left to skew.
const (
	fault5xx         = "5xx"
	faultThrottle    = "throttle"
	faultLatency     = "latency past the attempt timeout"
	faultProtected   = "termination-protected instances"
	faultUntagged    = "launches without the owner tag"
	faultRefused     = "stops refused by IAM"
	faultRefusedMany = "stops refused by IAM, several instances"
	faultNotFound    = "stops of instances not yet propagated"
	faultInterrupted = "creates killed between launch and record"
	faultWalkedAway  = "creates killed, never deleted"
	faultRowGone     = "row-gone instances launched"
	faultKilled      = "database connections killed"
	faultOutage      = "full database outages of 3s (every connection dropped, new ones refused)"
	faultRestarts    = "sweeper restarts"
)

// serverErrors are the 5xx answers, in turn: EC2's two codes and a bare
// status from a load balancer in front of it.
var serverErrors = []ec2fake.Fault{
	{Code: "InternalError"},
	{Code: "Unavailable"},
	{Status: http.StatusBadGateway},
}

// chaos injects the soak's faults and counts them. Its EC2 faults are
// decided per call on the client side and answered by the fake itself
// (queued with FailWith just before the call reaches it), so every error is
// the fake's own wire format; a call held past its attempt timeout never
// reaches the fake, as a request lost in flight has no effect.
type chaos struct {
	fake    *ec2fake.Server
	latency time.Duration
	on      atomic.Bool

	mu          sync.Mutex
	rnd         *rand.Rand
	counts      map[string]int
	protected   map[string]bool // instance id → protected, decided once per instance
	stripped    map[string]bool // row id → launched without the owner tag, decided once per row
	untagged    map[string]bool // instance ids launched without the owner tag
	interrupted map[string]bool // row ids whose create dies between launch and record
	killed      map[string]bool // those of them that launched their instance
	equipped    map[string]bool // instance id → given dependents, decided once per instance

	scene tally // what the scene-setters added (dependents_test.go)
}

func newChaos(fake *ec2fake.Server, seed uint64, latency time.Duration) *chaos {
	c := &chaos{
		fake:        fake,
		latency:     latency,
		rnd:         rand.New(rand.NewPCG(seed, seed^0x5eed)),
		counts:      make(map[string]int),
		protected:   make(map[string]bool),
		stripped:    make(map[string]bool),
		untagged:    make(map[string]bool),
		interrupted: make(map[string]bool),
		killed:      make(map[string]bool),
		equipped:    make(map[string]bool),
	}
	c.on.Store(true)
	return c
}

func (c *chaos) count(kind string, n int) {
	c.mu.Lock()
	c.counts[kind] += n
	c.mu.Unlock()
}

func (c *chaos) figures() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// float returns a uniform number in [0, 1) from the seeded source.
func (c *chaos) float() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rnd.Float64()
}

// decide draws, once per instance id, whether a fault at rate falls on
// it while the chaos is on, and records the draw in decided: it reports
// true the first time only, when the fault falls.
func (c *chaos) decide(decided map[string]bool, id string, rate float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, done := decided[id]; done {
		return false
	}
	on := c.on.Load() && c.rnd.Float64() < rate
	decided[id] = on
	return on
}

// protect decides, once per instance, whether it is termination-protected,
// and protects it on the fake before anyone can try to terminate it.
func (c *chaos) protect(id string) {
	if c.decide(c.protected, id, rateProtected) {
		c.fake.Protect(id)
		c.count(faultProtected, 1)
	}
}

// transport wraps next, the fake's in-process transport, with the EC2
// faults.
func (c *chaos) transport(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if !c.on.Load() {
			return next.RoundTrip(req)
		}
		u := c.float()
		switch {
		case u < rateServerError:
			if err := c.queue(req, serverErrors[int(u/rateServerError*float64(len(serverErrors)))]); err != nil {
				return nil, err
			}
			c.count(fault5xx, 1)
		case u < rateServerError+rateThrottle:
			if err := c.queue(req, ec2fake.Fault{Code: "RequestLimitExceeded"}); err != nil {
				return nil, err
			}
			c.count(faultThrottle, 1)
		case u < rateServerError+rateThrottle+rateLatency:
			c.count(faultLatency, 1)
			t := time.NewTimer(c.latency)
			defer t.Stop()
			select {
			case <-t.C: // a caller without an attempt timeout waits it out
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
		return next.RoundTrip(req)
	})
}

// queue makes the fake answer the next call of req's action with f.
func (c *chaos) queue(req *http.Request, f ec2fake.Fault) error {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	_ = req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(body))
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return err
	}
	c.fake.FailWith(form.Get("Action"), f, 1)
	return nil
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// launcher is the API's Launcher: the SDK client, with the chaos deciding
// which of the instances it launches are termination-protected and which
// lose the owner tag on the way, as a launch template that sets its own
// tags drops the caller's.
type launcher struct {
	workspaces.Launcher
	chaos *chaos
}

func (l launcher) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	strip := l.chaos.strip(aws.ToString(in.ClientToken))
	if strip {
		in = withoutOwner(in)
	}
	out, err := l.Launcher.RunInstances(ctx, in, optFns...)
	if err == nil {
		for _, inst := range out.Instances {
			id := aws.ToString(inst.InstanceId)
			if strip {
				l.chaos.markUntagged(id)
			}
			l.chaos.protect(id)
		}
	}
	return out, err
}

// withoutOwner returns a copy of in whose tag specifications carry no owner
// tag.
func withoutOwner(in *ec2.RunInstancesInput) *ec2.RunInstancesInput {
	cp := *in
	cp.TagSpecifications = make([]types.TagSpecification, len(in.TagSpecifications))
	for i, spec := range in.TagSpecifications {
		spec.Tags = slices.DeleteFunc(slices.Clone(spec.Tags), func(t types.Tag) bool {
			_, ours := owner[aws.ToString(t.Key)]
			return ours
		})
		cp.TagSpecifications[i] = spec
	}
	return &cp
}

// strip decides, once per row (the launch's client token), whether its
// launch loses the owner tag. A create that is to be killed keeps it: an
// instance that is neither owned nor recorded is invisible to everything
// leakless has, and no test of leakless can ask it to be found.
func (c *chaos) strip(row string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	on, decided := c.stripped[row]
	if !decided {
		on = c.on.Load() && !c.interrupted[row] && c.rnd.Float64() < rateUntagged
		c.stripped[row] = on
		if on {
			c.counts[faultUntagged]++
		}
	}
	return on
}

func (c *chaos) markUntagged(id string) {
	c.mu.Lock()
	c.untagged[id] = true
	c.mu.Unlock()
}

// untaggedInstances returns the instances launched without the owner tag.
func (c *chaos) untaggedInstances() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.untagged)
}

// interrupt decides, once per row, whether its create dies between launch
// and record.
func (c *chaos) interrupt(row string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	on, decided := c.interrupted[row]
	if !decided {
		on = c.on.Load() && c.rnd.Float64() < rateInterrupted
		c.interrupted[row] = on
	}
	return on
}

func (c *chaos) wasInterrupted(row string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interrupted[row]
}

// kill notes that row's create launched its instance and then died.
func (c *chaos) kill(row string) {
	c.mu.Lock()
	c.killed[row] = true
	c.counts[faultInterrupted]++
	c.mu.Unlock()
}

func (c *chaos) wasKilled(row string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed[row]
}

// errKilled is what a killed create's Record and Abandon answer.
var errKilled = errors.New("soak: the API process was killed between launch and record")

// dyingRows is the API's Rows, with the chaos killing a share of creates
// between launch and record: their Record and Abandon write nothing, as a
// process killed there would not. Record answers ErrNotFound, the one
// failure the API does not retry, so that the request ends at once; its row
// stays provisioning with no instance, and its instance runs, tagged with
// the row's id, until the row is deleted or its provisioning times out.
type dyingRows struct {
	workspaces.Rows
	chaos *chaos
}

func (r dyingRows) Insert(ctx context.Context, id, parentID string) (workspaces.Workspace, error) {
	ws, err := r.Rows.Insert(ctx, id, parentID)
	if err == nil {
		r.chaos.interrupt(ws.ID)
	}
	return ws, err
}

func (r dyingRows) Record(ctx context.Context, id, instanceID string) (workspaces.Workspace, error) {
	if r.chaos.wasInterrupted(id) {
		r.chaos.kill(id)
		return workspaces.Workspace{}, fmt.Errorf("%w: %w", errKilled, workspaces.ErrNotFound)
	}
	ws, err := r.Rows.Record(ctx, id, instanceID)
	if err == nil {
		r.chaos.equip(id, instanceID)
	}
	return ws, err
}

func (r dyingRows) Abandon(ctx context.Context, id string) (bool, error) {
	if r.chaos.wasInterrupted(id) {
		return false, errKilled
	}
	return r.Rows.Abandon(ctx, id)
}

// launchRowGone starts an instance straight on the fake, with the owner
// tags and the resource tag of a row that never exists: the leak a crash
// between launch and insert leaves.
func (c *chaos) launchRowGone() string {
	tags := map[string]string{resourceTag: workspaces.NewID()}
	for k, v := range owner {
		tags[k] = v
	}
	id := c.fake.Launch(ec2fake.Instance{Tags: tags})
	c.count(faultRowGone, 1)
	c.protect(id)
	return id
}

// killConnections terminates one random backend of the system under test
// (those whose application_name is app) every few tens of milliseconds
// until ctx ends. admin connects under another name, so it never kills
// itself, and other tests' connections are never touched.
func (c *chaos) killConnections(ctx context.Context, admin *pgxpool.Pool, app string) {
	const kill = `SELECT pg_terminate_backend(pid) FROM (
	SELECT pid FROM pg_stat_activity
	WHERE application_name = $1 AND datname = current_database() AND pid <> pg_backend_pid()
	ORDER BY random() LIMIT 1) victim`
	for {
		t := time.NewTimer(time.Duration(20+c.float()*180) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		var killed bool
		if err := admin.QueryRow(ctx, kill, app).Scan(&killed); err == nil && killed {
			c.count(faultKilled, 1)
		}
	}
}

// outageLength is how long the one full database outage lasts: longer
// than the events sink's retries within an Emit, so only the spool carries
// the events across it.
const outageLength = 3 * time.Second

// outage cuts every connection of the system under test to PostgreSQL,
// and refuses new ones, for outageLength at a random moment in the first
// ten seconds of the run.
func (c *chaos) outage(ctx context.Context, proxy interface{ Outage(time.Duration) }) {
	if !sleep(ctx, time.Duration(1000+c.float()*9000)*time.Millisecond) {
		return
	}
	proxy.Outage(outageLength)
	c.count(faultOutage, 1)
}
