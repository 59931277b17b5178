package sweeper

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// The sharded drain: 4 locations, each its own ec2fake with EC2's buckets,
// 5,000 removed rows in each, and 4 replicas each running a sweeper per
// location under RunAll with the location's shard lease. Every refill rate
// (the fakes', the clients', the backoffs, the lease ttl) runs shardScale
// times faster than EC2's, so figures are EC2 seconds: real × shardScale.
const (
	shardLocations = 4
	shardRows      = 5000
	shardReplicas  = 4
	shardScale     = 20
	shardTTL       = 60 * time.Second / shardScale // EC2 time: a minute
)

// crashable is a shard lease that, once crashed, releases nothing: a
// replica that dies keeps its leases until they expire.
type crashable struct {
	*store.ShardLease
	mu      sync.Mutex
	crashed bool
}

func (l *crashable) Release(ctx context.Context) error {
	l.mu.Lock()
	crashed := l.crashed
	l.mu.Unlock()
	if crashed {
		return nil
	}
	return l.ShardLease.Release(ctx)
}

type benchReplica struct {
	leases []*crashable
	cancel context.CancelFunc
	done   chan error
}

func (r *benchReplica) crash() {
	for _, l := range r.leases {
		l.mu.Lock()
		l.crashed = true
		l.mu.Unlock()
	}
	r.cancel()
	<-r.done
}

// BenchmarkShardedDrain drains the 20,000 rows; with kill, one replica
// crashes halfway through the bound. The baseline is one location's 5,000
// rows swept by one replica. bound-s is one location's bound: its 5,000
// instances cannot be terminated in under (5000-1000)/20 = 200 s.
func BenchmarkShardedDrain(b *testing.B) {
	for _, v := range []struct {
		name                string
		locations, replicas int
		kill                bool
	}{
		{"baseline-1-location-1-replica", 1, 1, false},
		{"4-locations-4-replicas", shardLocations, shardReplicas, false},
		{"4-locations-4-replicas-kill-1", shardLocations, shardReplicas, true},
	} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				shardedDrainOnce(b, v.locations, v.replicas, v.kill)
			}
		})
	}
}

func shardedDrainOnce(b *testing.B, nLocations, nReplicas int, kill bool) {
	b.StopTimer()
	ctx := context.Background()
	db := pgtest.Open(b)
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE workspaces (
		id text PRIMARY KEY, parent_id text, status text NOT NULL, instance_id text, region text)`); err != nil {
		b.Fatal(err)
	}
	tbl := table
	tbl.Location = "region"
	st, err := store.NewPgx(db.Pool, tbl, store.WithRedriveGrace(0))
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	limits := ec2fake.EC2Limits()
	locations := make([]string, nLocations)
	apis := map[string]*ec2.Client{}
	fakes := map[string]*ec2fake.Server{}
	for l := range locations {
		loc := fmt.Sprintf("region-%d", l)
		locations[l] = loc
		fake := ec2fake.New(ec2fake.WithLimits(limits.Scaled(shardScale)))
		b.Cleanup(fake.Close)
		fakes[loc], apis[loc] = fake, ec2.NewFromConfig(mototest.Config(fake.URL(), fake.Client()))
		ids, instances := make([]string, shardRows), make([]string, shardRows)
		for i := range shardRows {
			ids[i] = fmt.Sprintf("%s/ws-%05d", loc, i)
			instances[i] = fake.Launch(ec2fake.Instance{ID: fmt.Sprintf("i-%x%016x", l, i)})
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id, region)
			SELECT unnest($1::text[]), 'removed', unnest($2::text[]), $3`, ids, instances, loc); err != nil {
			b.Fatal(err)
		}
	}
	held := func() int {
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM workspaces WHERE instance_id IS NOT NULL`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}

	start := func() *benchReplica {
		shards := st.Shards("bench", locations, shardTTL)
		r := &benchReplica{done: make(chan error, 1)}
		var sweepers []*Sweeper
		for _, loc := range locations {
			c, err := awsec2.New(apis[loc],
				awsec2.WithRateLimit(awsec2.DefaultRatePerSecond*shardScale, awsec2.DefaultBurst),
				awsec2.WithResourceRateLimit(awsec2.DefaultResourceRatePerSecond*shardScale, awsec2.DefaultResourceBurst),
				awsec2.WithDescribeRateLimit(awsec2.DefaultDescribeRatePerSecond*shardScale, awsec2.DefaultDescribeBurst))
			if err != nil {
				b.Fatal(err)
			}
			scoped, err := st.In(loc)
			if err != nil {
				b.Fatal(err)
			}
			lease := &crashable{ShardLease: shards.Lease(loc)}
			r.leases = append(r.leases, lease)
			sweepers = append(sweepers, newSweeperB(b, scoped, c, WithLeader(lease),
				WithInterval(time.Second/shardScale), WithPassTimeout(10*time.Minute/shardScale),
				WithRetry(teardown.WithMaxAttempts(5), teardown.WithBackoff(time.Second/shardScale, 20*time.Second/shardScale)),
				WithRowBackoff(time.Minute/shardScale, time.Hour/shardScale)))
		}
		rctx, cancel := context.WithCancel(ctx)
		r.cancel = cancel
		go func() { r.done <- RunAll(rctx, sweepers...) }()
		return r
	}

	resources := limits.TerminateResources
	bound := time.Duration(float64(shardRows-resources.Capacity) / resources.PerSecond * float64(time.Second)) // EC2 time
	b.StartTimer()
	began := time.Now()
	replicas := make([]*benchReplica, nReplicas)
	for i := range replicas {
		replicas[i] = start()
	}
	killAt := began.Add(bound / shardScale / 2)
	killed := false
	maxLed := 0
	for held() > 0 {
		if kill && !killed && time.Now().After(killAt) {
			replicas[0].crash()
			killed = true
		}
		if time.Since(began) > shardTTL { // past the start, when the first replica up leads everything for a renewal
			maxLed = max(maxLed, mostLed(b, db, "bench/shard/"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	drain := time.Since(began) * shardScale
	b.StopTimer()
	for i, r := range replicas {
		if i == 0 && killed {
			continue
		}
		r.cancel()
		if err := <-r.done; err != nil {
			b.Error(err)
		}
	}
	throttledN := 0
	for _, f := range fakes {
		throttledN += throttled(f)
	}
	b.ReportMetric(drain.Seconds(), "ec2-drain-s")
	b.ReportMetric(bound.Seconds(), "bound-s")
	b.ReportMetric(drain.Seconds()/bound.Seconds(), "x-bound")
	b.ReportMetric((bound + shardTTL*shardScale).Seconds(), "bound+ttl-s")
	b.ReportMetric(float64(maxLed), "max-shards-led")
	b.ReportMetric(float64(throttledN), "throttled")
}

// mostLed is the most shards any one holder leads now.
func mostLed(b *testing.B, db *pgtest.DB, prefix string) int {
	var n int
	err := db.Pool.QueryRow(context.Background(), `SELECT COALESCE(max(c), 0) FROM (
		SELECT count(*) AS c FROM leakless_leases WHERE starts_with(name, $1) AND expires_at > now() GROUP BY holder) t`, prefix).Scan(&n)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
