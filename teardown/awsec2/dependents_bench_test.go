package awsec2_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// dependentsRun tears down instances that each own volumes extra volumes
// and one Elastic IP, through teardown.StopAll with WithDependents,
// against an ec2fake enforcing EC2's buckets, every rate (the fake's and
// the client's) and the backoff scaled by scale.
type dependentsRun struct {
	instances, volumes int
	scale              float64
	inProcess          bool
}

// dependentsResult is a dependentsRun in EC2 time.
type dependentsResult struct {
	drain, bound time.Duration
	calls        int // requests of every action
	throttled    int // of those, answered RequestLimitExceeded
	failed       int // ids StopAll gave up on
	left         int // volumes and addresses left
}

// dependentsBound is the shortest time EC2's buckets allow: the slowest
// of DeleteVolume's (one call per volume) and ReleaseAddress's (one per
// address), each a bucket of 100 refilling 5/s, and the instances'.
func dependentsBound(instances, volumes int, l ec2fake.Limits) time.Duration {
	per := func(n int, b ec2fake.Bucket) float64 { return max(0, float64(n-b.Capacity)/b.PerSecond) }
	worst := max(per(instances*volumes, l.DeleteCalls), per(instances, l.DeleteCalls))
	return max(time.Duration(worst*float64(time.Second)), bound(instances, awsec2.DefaultBatchSize, l))
}

func (r dependentsRun) do(tb testing.TB) dependentsResult {
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
		ids[i] = srv.Launch(ec2fake.Instance{Tags: owner})
		for j := range r.volumes {
			srv.AddVolume(ec2fake.Volume{InstanceID: ids[i], Device: "/dev/sd" + string(rune('f'+j)), Tags: owner})
		}
		srv.AddAddress(ec2fake.Address{InstanceID: ids[i], Tags: owner})
	}
	k := r.scale
	c := newClient(tb, sdkFor(srv), awsec2.WithOwner(owner), awsec2.WithDependents(),
		awsec2.WithRateLimit(awsec2.DefaultRatePerSecond*k, awsec2.DefaultBurst),
		awsec2.WithResourceRateLimit(awsec2.DefaultResourceRatePerSecond*k, awsec2.DefaultResourceBurst),
		awsec2.WithDescribeRateLimit(awsec2.DefaultDescribeRatePerSecond*k*0.95, awsec2.DefaultDescribeBurst),
		awsec2.WithDeleteRateLimit(awsec2.DefaultDeleteRatePerSecond*k, awsec2.DefaultDeleteBurst),
		awsec2.WithCancelRateLimit(awsec2.DefaultCancelRatePerSecond*k, awsec2.DefaultCancelBurst))
	unit := time.Duration(float64(time.Second) / k)

	start := time.Now()
	res, _ := untilFinished(context.Background(), c, ids, unit, 40, teardown.WithMaxAttempts(20), teardown.WithBackoff(unit, 20*unit))
	elapsed := time.Since(start)

	out := dependentsResult{drain: time.Duration(float64(elapsed) * k), bound: dependentsBound(r.instances, r.volumes, limits)}
	for _, err := range res {
		if err != nil {
			out.failed++
		}
	}
	for _, q := range srv.Requests() {
		out.calls++
		if q.Code == "RequestLimitExceeded" {
			out.throttled++
		}
	}
	out.left = len(srv.Volumes()) + len(srv.Addresses())
	return out
}

// TestDependentsDrainAtTheBucketBound tears down 1,000 instances, each
// with 2 extra volumes and an Elastic IP, in fake time at EC2's real
// rates: DeleteVolume's bucket (2,000 calls, 100 burst, 5/s) bounds it at
// 380s.
func TestDependentsDrainAtTheBucketBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := dependentsRun{instances: 1000, volumes: 2, scale: 1, inProcess: true}.do(t)
		t.Logf("drain %v, bound %v (%.3fx), %d calls, %d throttled, %d failed, %d left",
			r.drain, r.bound, float64(r.drain)/float64(r.bound), r.calls, r.throttled, r.failed, r.left)
		if r.throttled != 0 || r.failed != 0 || r.left != 0 {
			t.Errorf("%d throttled, %d failed, %d volumes and addresses left; want none", r.throttled, r.failed, r.left)
		}
		if r.bound != 380*time.Second || r.drain > r.bound*12/10 {
			t.Errorf("drain %v, want within 1.2x of the bound %v (380s)", r.drain, r.bound)
		}
	})
}

// BenchmarkStopAllDependents1000 tears down 1,000 instances, each with 2
// extra volumes and an Elastic IP, against ec2fake with EC2's buckets
// over a real socket, every rate scaled 20 times as in
// BenchmarkStopAll3000 (figures in EC2 seconds).
func BenchmarkStopAllDependents1000(b *testing.B) {
	var r dependentsResult
	for range b.N {
		r = dependentsRun{instances: 1000, volumes: 2, scale: 20}.do(b)
	}
	b.ReportMetric(r.drain.Seconds(), "ec2-drain-s")
	b.ReportMetric(r.bound.Seconds(), "ec2-bound-s")
	b.ReportMetric(r.drain.Seconds()/r.bound.Seconds(), "drain/bound")
	b.ReportMetric(float64(r.calls), "calls")
	b.ReportMetric(float64(r.throttled), "throttled")
	b.ReportMetric(float64(r.failed), "failed-ids")
	b.ReportMetric(float64(r.left), "left")
}
