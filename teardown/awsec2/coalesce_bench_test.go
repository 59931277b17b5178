package awsec2_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// concurrentStops is n request handlers each stopping one instance at the
// same moment, through teardown.Coalesce or straight through the client.
type concurrentStops struct {
	n         int
	coalesced bool
	scale     float64
}

func (r concurrentStops) do(tb testing.TB) drainResult {
	limits := ec2fake.EC2Limits()
	srv := ec2fake.New(ec2fake.WithLimits(limits.Scaled(r.scale)))
	defer srv.Close()
	ids := make([]string, r.n)
	for i := range ids {
		ids[i] = srv.Launch(ec2fake.Instance{})
	}
	c := newClient(tb, sdkFor(srv),
		awsec2.WithRateLimit(awsec2.DefaultRatePerSecond*r.scale, awsec2.DefaultBurst),
		awsec2.WithResourceRateLimit(awsec2.DefaultResourceRatePerSecond*r.scale, awsec2.DefaultResourceBurst))
	var stopper teardown.Stopper = c
	if r.coalesced {
		co, err := teardown.Coalesce(c)
		if err != nil {
			tb.Fatal(err)
		}
		defer co.Close()
		stopper = co
	}
	unit := time.Duration(float64(time.Second) / r.scale)

	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, id := range ids {
		wg.Go(func() {
			err := teardown.StopWithRetry(context.Background(), stopper, id,
				teardown.WithMaxAttempts(10), teardown.WithBackoff(unit, 20*unit))
			if err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	out := drainResult{
		drain:  time.Duration(float64(elapsed) * r.scale),
		bound:  bound(r.n, awsec2.DefaultBatchSize, limits),
		failed: int(failed.Load()),
	}
	out.terminateCalls, out.throttled = terminateCalls(srv)
	return out
}

// BenchmarkConcurrentStops is n DELETE handlers each stopping one instance
// at once, against ec2fake with EC2's buckets, rates scaled 20 times as in
// BenchmarkStopAll3000 (figures in EC2 seconds). coalesced=true goes
// through teardown.Coalesce, whose window (100ms idle, 1s at most, in real
// time) is not scaled; coalesced=false is one TerminateInstances call per
// handler, paced by the client's request bucket.
func BenchmarkConcurrentStops(b *testing.B) {
	for _, n := range []int{1000, 3000} {
		for _, coalesced := range []bool{true, false} {
			b.Run(fmt.Sprintf("n=%d/coalesced=%v", n, coalesced), func(b *testing.B) {
				var r drainResult
				for range b.N {
					r = concurrentStops{n: n, coalesced: coalesced, scale: 20}.do(b)
				}
				b.ReportMetric(r.drain.Seconds(), "ec2-drain-s")
				b.ReportMetric(r.bound.Seconds(), "ec2-bound-s")
				b.ReportMetric(float64(r.terminateCalls), "terminate-calls")
				b.ReportMetric(float64(r.throttled), "throttled")
				b.ReportMetric(float64(r.failed), "failed-ids")
			})
		}
	}
}
