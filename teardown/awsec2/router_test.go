package awsec2_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// region is one location of a router under test: its own fake EC2.
type region struct {
	srv    *ec2fake.Server
	client *awsec2.Client
}

// newRouter builds a Router over one fake EC2 per location, each reached
// through the real SDK, with opts for every location's Client.
func newRouter(t *testing.T, inProcess bool, locations []string, opts ...awsec2.Option) (*awsec2.Router, map[string]region) {
	t.Helper()
	regions := make(map[string]region, len(locations))
	clients := make(map[string]*awsec2.Client, len(locations))
	for _, loc := range locations {
		var srv *ec2fake.Server
		if inProcess {
			srv, _ = fakeInProcess(t, ec2fake.WithLimits(ec2fake.EC2Limits()))
		} else {
			srv, _ = fake(t)
		}
		c := newClient(t, sdkFor(srv), opts...)
		regions[loc] = region{srv, c}
		clients[loc] = c
	}
	r, err := awsec2.NewRouter(clients)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	return r, regions
}

// stopCalls are the TerminateInstances and StopInstances requests srv received.
func stopCalls(srv *ec2fake.Server) []ec2fake.Request {
	var out []ec2fake.Request
	for _, q := range srv.Requests() {
		if q.Action == "TerminateInstances" || q.Action == "StopInstances" {
			out = append(out, q)
		}
	}
	return out
}

// Every fake numbers its instances alike, so the same ids live in every
// location, as they never would on EC2: an id sent to the wrong location
// would terminate the wrong instance. Stopping through one location
// touches only that location's instances, and an id it does not have is
// not found there, never looked for elsewhere.
func TestRouterSendsEachIDToItsLocationOnly(t *testing.T) {
	owner := map[string]string{"team": "a"}
	locations := []string{"111122223333/us-east-1", "eu-west-1", "us-east-1"}
	r, regions := newRouter(t, false, locations, awsec2.WithOwner(owner))
	ctx := context.Background()

	launched := map[string][]string{}
	for _, loc := range locations {
		for range 3 {
			launched[loc] = append(launched[loc], regions[loc].srv.Launch(ec2fake.Instance{Tags: owner}))
		}
	}
	onlyUSEast := regions["us-east-1"].srv.Launch(ec2fake.Instance{Tags: owner})
	launched["us-east-1"] = append(launched["us-east-1"], onlyUSEast)
	if !slices.Equal(launched["eu-west-1"], launched["us-east-1"][:3]) {
		t.Fatalf("the fakes no longer number instances alike (%v, %v): this test needs the same ids in two locations", launched["eu-west-1"], launched["us-east-1"])
	}

	if got := r.Locations(); !slices.Equal(got, locations) {
		t.Fatalf("Locations() = %q, want %q", got, locations)
	}
	owned, err := r.Owned(ctx)
	if err != nil {
		t.Fatalf("Owned: %v", err)
	}
	byLocation := map[string][]string{}
	for _, in := range owned {
		byLocation[in.Location] = append(byLocation[in.Location], in.ID)
	}
	for _, loc := range locations {
		if !slices.Equal(byLocation[loc], launched[loc]) {
			t.Errorf("Owned in %q: %v, want %v", loc, byLocation[loc], launched[loc])
		}
	}
	if len(owned) != 10 {
		t.Errorf("Owned listed %d instances, want 10", len(owned))
	}

	eu, err := r.At("eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if eu != regions["eu-west-1"].client {
		t.Fatal("At(eu-west-1) is not the Client the router was built with")
	}
	ids := append(slices.Clone(launched["eu-west-1"]), onlyUSEast)
	res := eu.StopBatch(ctx, ids)
	for _, id := range launched["eu-west-1"] {
		if res[id] != nil {
			t.Errorf("eu-west-1 %s: %v, want stopped", id, res[id])
		}
		if in, _ := regions["eu-west-1"].srv.Instance(id); in.State != ec2fake.ShuttingDown && in.State != ec2fake.Terminated {
			t.Errorf("eu-west-1 %s is %s, want terminated", id, in.State)
		}
	}
	if err := res[onlyUSEast]; !errors.Is(err, teardown.ErrNotFound) {
		t.Errorf("%s, which only us-east-1 has, sent to eu-west-1: %v, want ErrNotFound", onlyUSEast, err)
	}
	for _, loc := range []string{"us-east-1", "111122223333/us-east-1"} {
		if calls := stopCalls(regions[loc].srv); len(calls) != 0 {
			t.Errorf("%s received %d stop calls (%v) for ids sent to eu-west-1", loc, len(calls), calls)
		}
		for _, id := range launched[loc] {
			if in, _ := regions[loc].srv.Instance(id); in.State != ec2fake.Running {
				t.Errorf("%s %s is %s, want running", loc, id, in.State)
			}
		}
	}

	owned, err = r.Owned(ctx)
	if err != nil {
		t.Fatalf("Owned: %v", err)
	}
	for _, in := range owned {
		if in.Location == "eu-west-1" {
			t.Errorf("eu-west-1 still lists %s after its stop", in.ID)
		}
	}
	if len(owned) != 7 {
		t.Errorf("Owned listed %d instances after eu-west-1's stop, want 7", len(owned))
	}
}

func TestRouterUnknownLocation(t *testing.T) {
	r, _ := newRouter(t, false, []string{"", "eu-west-1"})
	for _, loc := range []string{"us-east-1", "EU-WEST-1", "eu-west-1 "} {
		if c, err := r.At(loc); !errors.Is(err, awsec2.ErrUnknownLocation) || c != nil {
			t.Errorf("At(%q) = %v, %v; want nil and ErrUnknownLocation", loc, c, err)
		}
	}
	if c, err := r.At(""); err != nil || c == nil {
		t.Errorf("At(\"\") = %v, %v; want the default location's Client", c, err)
	}
}

func TestNewRouterRefusesBadConfig(t *testing.T) {
	_, api := fake(t)
	a, b := newClient(t, api), newClient(t, api)
	for name, clients := range map[string]map[string]*awsec2.Client{
		"none":             nil,
		"nil client":       {"us-east-1": nil},
		"one client twice": {"us-east-1": a, "eu-west-1": a},
		"empty region":     {"123456789012/": a},
		"empty account":    {"/us-east-1": a},
		"three parts":      {"org/123456789012/us-east-1": a},
		"space":            {"us-east-1 ": a},
		"newline":          {"us-east\n1": a},
	} {
		if r, err := awsec2.NewRouter(clients); !errors.Is(err, teardown.ErrConfig) || r != nil {
			t.Errorf("%s: NewRouter = %v, %v; want ErrConfig", name, r, err)
		}
	}
	if _, err := awsec2.NewRouter(map[string]*awsec2.Client{"": a, "123456789012/us-east-1": b}); err != nil {
		t.Errorf("default and account/region: %v", err)
	}
}

// A location that fails to list fails the whole listing, naming it.
func TestRouterOwnedFailsWhole(t *testing.T) {
	owner := map[string]string{"team": "a"}
	r, regions := newRouter(t, false, []string{"eu-west-1", "us-east-1"}, awsec2.WithOwner(owner))
	regions["eu-west-1"].srv.Launch(ec2fake.Instance{Tags: owner})
	regions["us-east-1"].srv.Fail("DescribeInstances", "UnauthorizedOperation", 1)
	owned, err := r.Owned(context.Background())
	if err == nil || owned != nil {
		t.Fatalf("Owned = %v, %v; want nothing and an error", owned, err)
	}
	if codeOf(err) != "UnauthorizedOperation" || !strings.Contains(err.Error(), `"us-east-1"`) {
		t.Fatalf("Owned error %q: want us-east-1's UnauthorizedOperation", err)
	}
}

// Each location's Client has its own buckets, as EC2 meters each account
// and region apart. In fake time at EC2's real rates: two locations that
// each drain 3,000 instances do so in parallel, each in its own 100 s
// bound (one shared budget would take 200 s), while a third location's
// 500, within its burst, are done at once; and a throttling answer in one
// location, which drains that location's buckets, delays nothing
// elsewhere.
func TestRouterLocationsHaveTheirOwnBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sizes := map[string]int{"eu-west-1": 3000, "us-east-1": 3000, "ap-south-1": 500}
		r, regions := newRouter(t, true, slices.Sorted(maps.Keys(sizes)))
		ids := map[string][]string{}
		for loc, n := range sizes {
			for range n {
				ids[loc] = append(ids[loc], regions[loc].srv.Launch(ec2fake.Instance{}))
			}
		}

		start := time.Now()
		var (
			mu   sync.Mutex
			took = map[string]time.Duration{}
			wg   sync.WaitGroup
		)
		for _, loc := range r.Locations() {
			wg.Go(func() {
				c, err := r.At(loc)
				if err != nil {
					t.Error(err)
					return
				}
				res := teardown.StopAll(context.Background(), c, ids[loc], teardown.WithMaxAttempts(5))
				for id, err := range res {
					if err != nil {
						t.Errorf("%s %s: %v", loc, id, err)
					}
				}
				mu.Lock()
				took[loc] = time.Since(start)
				mu.Unlock()
			})
		}
		wg.Wait()
		t.Logf("drains: %v", took)
		bound := bound(3000, awsec2.DefaultBatchSize, ec2fake.EC2Limits()) // 100 s
		for _, loc := range []string{"eu-west-1", "us-east-1"} {
			if took[loc] < bound || took[loc] > bound*115/100 {
				t.Errorf("%s drained 3,000 in %v, want within 1.15x of its own bound %v", loc, took[loc], bound)
			}
		}
		if took["ap-south-1"] > time.Second {
			t.Errorf("ap-south-1 drained 500 in %v, want at once: another location's budget held it up", took["ap-south-1"])
		}
		for loc, reg := range regions {
			if _, throttled := terminateCalls(reg.srv); throttled != 0 {
				t.Errorf("%s: %d calls throttled, want none", loc, throttled)
			}
		}

		// EC2 throttles eu-west-1: its Client drains its own buckets and
		// waits for them to refill; us-east-1 is not slowed at all.
		eu, _ := r.At("eu-west-1")
		us, _ := r.At("us-east-1")
		fresh := map[string]string{
			"eu-west-1": regions["eu-west-1"].srv.Launch(ec2fake.Instance{}),
			"us-east-1": regions["us-east-1"].srv.Launch(ec2fake.Instance{}),
		}
		time.Sleep(time.Minute) // every bucket refills
		regions["eu-west-1"].srv.Fail("TerminateInstances", "RequestLimitExceeded", 1)
		if err := eu.Stop(context.Background(), fresh["eu-west-1"]); codeOf(err) != "RequestLimitExceeded" {
			t.Fatalf("eu-west-1 Stop: %v, want RequestLimitExceeded", err)
		}
		start = time.Now()
		if err := us.Stop(context.Background(), fresh["us-east-1"]); err != nil {
			t.Fatalf("us-east-1 Stop: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("us-east-1's stop after eu-west-1 was throttled took %v, want no wait", d)
		}
		start = time.Now()
		if err := eu.Stop(context.Background(), fresh["eu-west-1"]); err != nil {
			t.Fatalf("eu-west-1 Stop after the throttle: %v", err)
		}
		if d := time.Since(start); d < time.Second/awsec2.DefaultRatePerSecond {
			t.Errorf("eu-west-1's next stop took %v, want at least a request token's refill (%v): its buckets were not drained", d, time.Second/awsec2.DefaultRatePerSecond)
		}
	})
}
