package soak

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// Fault rates on every EC2 call the system under test makes, and the share
// of instances that are termination-protected.
const (
	rateServerError = 0.20
	rateThrottle    = 0.10
	rateLatency     = 0.05
	rateProtected   = 0.01
)

// The kinds of fault counted in the figures.
const (
	fault5xx       = "5xx"
	faultThrottle  = "throttle"
	faultLatency   = "latency past the attempt timeout"
	faultProtected = "termination-protected instances"
	faultRowGone   = "row-gone instances launched"
	faultKilled    = "database connections killed"
	faultRestarts  = "sweeper restarts"
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

	mu        sync.Mutex
	rnd       *rand.Rand
	counts    map[string]int
	protected map[string]bool // instance id → protected, decided once per instance
}

func newChaos(fake *ec2fake.Server, seed uint64, latency time.Duration) *chaos {
	c := &chaos{
		fake:      fake,
		latency:   latency,
		rnd:       rand.New(rand.NewPCG(seed, seed^0x5eed)),
		counts:    make(map[string]int),
		protected: make(map[string]bool),
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

// protect decides, once per instance, whether it is termination-protected,
// and protects it on the fake before anyone can try to terminate it.
func (c *chaos) protect(id string) {
	c.mu.Lock()
	_, decided := c.protected[id]
	on := !decided && c.on.Load() && c.rnd.Float64() < rateProtected
	if !decided {
		c.protected[id] = on
	}
	c.mu.Unlock()
	if on {
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
// which of the instances it launches are termination-protected.
type launcher struct {
	workspaces.Launcher
	chaos *chaos
}

func (l launcher) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	out, err := l.Launcher.RunInstances(ctx, in, optFns...)
	if err == nil {
		for _, inst := range out.Instances {
			l.chaos.protect(aws.ToString(inst.InstanceId))
		}
	}
	return out, err
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
