package awsec2_test

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// drainRun is one bulk reap through teardown.StopAll against an ec2fake
// enforcing EC2's token buckets.
type drainRun struct {
	instances int
	scale     float64 // every refill rate and backoff sped up by this factor
	limiter   bool    // the client's own buckets on or off
	// resourceRate replaces the client's default resource rate (19/s)
	// when set.
	resourceRate float64
	inProcess    bool // in-process fake, for testing/synctest
}

// drainResult reports a drainRun in EC2 time: durations are multiplied
// back by the scale.
type drainResult struct {
	drain, bound   time.Duration
	terminateCalls int
	throttled      int
	failed         int // ids StopAll gave up on
}

// bound is the shortest time EC2's buckets allow for terminating n
// instances in batches of batch: every instance beyond the resource
// bucket's capacity waits for its refill, and every call beyond the
// request bucket's capacity for that one's.
func bound(n, batch int, l ec2fake.Limits) time.Duration {
	calls := (n + batch - 1) / batch
	resources := float64(n-l.TerminateResources.Capacity) / l.TerminateResources.PerSecond
	requests := float64(calls-l.TerminateCalls.Capacity) / l.TerminateCalls.PerSecond
	return time.Duration(max(0, resources, requests) * float64(time.Second))
}

func (r drainRun) do(tb testing.TB) drainResult {
	limits := ec2fake.EC2Limits()
	opts := []ec2fake.Option{ec2fake.WithLimits(limits.Scaled(r.scale))}
	var srv *ec2fake.Server
	if r.inProcess {
		srv = ec2fake.NewInProcess(opts...)
	} else {
		srv = ec2fake.New(opts...)
	}
	defer srv.Close()
	ids := make([]string, r.instances)
	for i := range ids {
		ids[i] = srv.Launch(ec2fake.Instance{})
	}

	resourceRate := r.resourceRate
	if resourceRate == 0 {
		resourceRate = awsec2.DefaultResourceRatePerSecond
	}
	copts := []awsec2.Option{
		awsec2.WithRateLimit(awsec2.DefaultRatePerSecond*r.scale, awsec2.DefaultBurst),
		awsec2.WithResourceRateLimit(resourceRate*r.scale, awsec2.DefaultResourceBurst),
	}
	if !r.limiter {
		copts = []awsec2.Option{awsec2.WithRateLimit(math.Inf(1), 1), awsec2.WithResourceRateLimit(math.Inf(1), 1)}
	}
	c := newClient(tb, sdkFor(srv), copts...)
	unit := time.Duration(float64(time.Second) / r.scale)

	start := time.Now()
	res := teardown.StopAll(context.Background(), c, ids,
		teardown.WithMaxAttempts(10),
		teardown.WithBackoff(unit, 20*unit))
	elapsed := time.Since(start)

	out := drainResult{
		drain: time.Duration(float64(elapsed) * r.scale),
		bound: bound(r.instances, awsec2.DefaultBatchSize, limits),
	}
	for _, err := range res {
		if err != nil {
			out.failed++
		}
	}
	out.terminateCalls, out.throttled = terminateCalls(srv)
	return out
}

// terminateCalls counts the TerminateInstances requests srv answered, and
// those it throttled.
func terminateCalls(srv *ec2fake.Server) (calls, throttled int) {
	for _, q := range srv.Requests() {
		if q.Action == "TerminateInstances" {
			calls++
			if q.Code == "RequestLimitExceeded" {
				throttled++
			}
		}
	}
	return calls, throttled
}

// TestStopAllDrainsAtTheBucketBound reaps 3,000 instances in fake time,
// at EC2's real rates.
func TestStopAllDrainsAtTheBucketBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		on := drainRun{instances: 3000, scale: 1, limiter: true, inProcess: true}.do(t)
		t.Logf("limiter on:  drain %v, bound %v (%.3fx), %d TerminateInstances calls, %d throttled, %d failed",
			on.drain, on.bound, float64(on.drain)/float64(on.bound), on.terminateCalls, on.throttled, on.failed)
		if on.throttled != 0 || on.failed != 0 {
			t.Errorf("%d calls throttled, %d ids failed; want none", on.throttled, on.failed)
		}
		if on.terminateCalls > 6 { // ⌈3000/500⌉; the request bucket (100) forces no more
			t.Errorf("%d TerminateInstances calls, want at most 6", on.terminateCalls)
		}
		if on.bound != 100*time.Second || on.drain > on.bound*115/100 {
			t.Errorf("drain %v, want within 1.15x of the bound %v (100s)", on.drain, on.bound)
		}

		off := drainRun{instances: 3000, scale: 1, limiter: false, inProcess: true}.do(t)
		t.Logf("limiter off: drain %v, %d TerminateInstances calls, %d throttled, %d failed",
			off.drain, off.terminateCalls, off.throttled, off.failed)
		if off.throttled == 0 {
			t.Errorf("without the limiter no call was throttled: the fake's buckets are not in force")
		}
	})
}

// BenchmarkStopAll3000 reaps 3,000 instances against ec2fake with EC2's
// buckets, over a real socket and in real time. Every refill rate, the
// fake's and the client's, and the retry backoff run 20 times faster than
// EC2's (capacities unchanged), so the throttling is EC2's and every wait
// is 20 times shorter; the figures reported are multiplied back into EC2
// seconds. The variants: the client's defaults; its resource bucket at
// exactly EC2's 20/s instead of 19/s; its buckets off.
func BenchmarkStopAll3000(b *testing.B) {
	for _, v := range []struct {
		name string
		run  drainRun
	}{
		{"limiter=on", drainRun{limiter: true}},
		{"limiter=ec2-rate", drainRun{limiter: true, resourceRate: 20}},
		{"limiter=off", drainRun{limiter: false}},
	} {
		b.Run(v.name, func(b *testing.B) {
			run := v.run
			run.instances, run.scale = 3000, 20
			var r drainResult
			for range b.N {
				r = run.do(b)
			}
			b.ReportMetric(r.drain.Seconds(), "ec2-drain-s")
			b.ReportMetric(r.bound.Seconds(), "ec2-bound-s")
			b.ReportMetric(r.drain.Seconds()/r.bound.Seconds(), "drain/bound")
			b.ReportMetric(float64(r.terminateCalls), "terminate-calls")
			b.ReportMetric(float64(r.throttled), "throttled")
			b.ReportMetric(float64(r.failed), "failed-ids")
		})
	}
}
