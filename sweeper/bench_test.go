package sweeper

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// The drain benchmark: 2,000 removed rows still holding instances, every
// EC2 call answered after 20 ms.
const (
	drainRows    = 2000
	drainLatency = 20 * time.Millisecond
)

// drainSetup returns an ec2fake holding drainRows running instances and a
// Memory store whose removed rows hold them.
func drainSetup(b *testing.B, opts ...ec2fake.Option) (*ec2fake.Server, *ec2.Client, *store.Memory) {
	fake := ec2fake.New(opts...)
	b.Cleanup(fake.Close)
	fake.SetLatency("TerminateInstances", drainLatency)
	fake.SetLatency("DescribeInstances", drainLatency)
	mem := store.NewMemory(table)
	for i := range drainRows {
		id := fake.Launch(ec2fake.Instance{})
		mem.Put(store.Row{ID: fmt.Sprintf("ws-%04d", i), Status: "removed", InstanceID: id})
	}
	return fake, ec2.NewFromConfig(mototest.Config(fake.URL(), fake.Client())), mem
}

// throttled counts the RequestLimitExceeded answers fake gave.
func throttled(fake *ec2fake.Server) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Code == "RequestLimitExceeded" {
			n++
		}
	}
	return n
}

// naiveSweeper is the backstop this package replaces: each pass reads at
// most 100 removed rows and stops them one call at a time, with no
// per-row state; passes start every 60 seconds. (It does clear a row once
// its stop succeeds; without that it would never drain at all.)
type naiveSweeper struct {
	st       store.Store
	stopper  teardown.Stopper
	limit    int
	interval time.Duration
}

// pass runs one pass and reports how many rows it saw.
func (n naiveSweeper) pass(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := n.st.Pending(ctx, n.limit)
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		if err := n.stopper.Stop(ctx, r.InstanceID); err == nil || errors.Is(err, teardown.ErrGone) {
			if _, err := n.st.Reaped(ctx, r); err != nil {
				return 0, err
			}
		}
	}
	return len(rows), nil
}

// BenchmarkDrain drains 2,000 removed rows through ec2fake with 20 ms per
// call. Each sub-benchmark reports passes, TerminateInstances calls,
// throttled answers and the drain time: measured for one pass, and for
// the naive sweeper the time its 60-second schedule needs (passes start
// 60s apart; only the calls are waited for). Run it with -benchtime=1x:
// one iteration of the ec2-buckets case takes about 50 seconds by design.
func BenchmarkDrain(b *testing.B) {
	noLimits := []awsec2.Option{
		awsec2.WithRateLimit(math.Inf(1), 1),
		awsec2.WithResourceRateLimit(math.Inf(1), awsec2.MaxBatchSize),
		awsec2.WithDescribeRateLimit(math.Inf(1), 1),
	}

	b.Run("naive", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			fake, api, mem := drainSetup(b)
			client := newCloud(b, api, noLimits...).ec2
			naive := naiveSweeper{st: mem, stopper: client, limit: 100, interval: 60 * time.Second}
			b.StartTimer()

			passes, last := 0, time.Duration(0)
			for {
				start := time.Now()
				n, err := naive.pass(b.Context())
				if err != nil {
					b.Fatalf("naive pass: %v", err)
				}
				if n == 0 {
					break
				}
				passes++
				last = time.Since(start)
			}
			b.StopTimer()
			drain := time.Duration(passes-1)*naive.interval + last
			b.ReportMetric(float64(passes), "passes")
			b.ReportMetric(float64(fake.Calls("TerminateInstances")), "terminate-calls")
			b.ReportMetric(float64(throttled(fake)), "throttled")
			b.ReportMetric(drain.Seconds(), "drain-s")
		}
	})

	b.Run("sweeper", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			fake, api, mem := drainSetup(b)
			sw := newSweeperB(b, mem, newCloud(b, api, noLimits...).ec2)
			b.StartTimer()

			drainOnce(b, sw, fake)
		}
	})

	// EC2's buckets on in ec2fake: TerminateInstances may name 1,000
	// instances at once and 20 more each second after, so 2,000 cannot be
	// done in under (2000-1000)/20 = 50 seconds, plus one call's latency.
	// The client's own buckets, at their defaults, pace the calls.
	b.Run("sweeper-ec2-buckets", func(b *testing.B) {
		limits := ec2fake.EC2Limits()
		rs := limits.TerminateResources
		bound := time.Duration(float64(drainRows-rs.Capacity)/rs.PerSecond*float64(time.Second)) + drainLatency
		for range b.N {
			b.StopTimer()
			fake, api, mem := drainSetup(b, ec2fake.WithLimits(limits))
			sw := newSweeperB(b, mem, newCloud(b, api).ec2, WithPassTimeout(2*time.Minute))
			b.StartTimer()

			rep := drainOnce(b, sw, fake)
			b.ReportMetric(bound.Seconds(), "bound-s")
			b.ReportMetric(rep.Duration.Seconds()/bound.Seconds(), "x-bound")
		}
	})
}

// drainOnce runs the one pass that must drain every row, stops the timer
// and reports the pass's figures.
func drainOnce(b *testing.B, sw *Sweeper, fake *ec2fake.Server) Report {
	rep, err := sw.SweepOnce(b.Context())
	b.StopTimer()
	if err != nil || rep.Reaped != drainRows {
		b.Fatalf("SweepOnce = %+v, %v; want %d reaped", rep, err, drainRows)
	}
	b.ReportMetric(1, "passes")
	b.ReportMetric(float64(fake.Calls("TerminateInstances")), "terminate-calls")
	b.ReportMetric(float64(throttled(fake)), "throttled")
	b.ReportMetric(rep.Duration.Seconds(), "drain-s")
	return rep
}

func newSweeperB(b *testing.B, st store.Store, s teardown.Stopper, opts ...Option) *Sweeper {
	sw, err := New(st, s, opts...)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	return sw
}
