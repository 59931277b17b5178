package sweeper

import (
	"context"
	"fmt"
	"math"
	"runtime"
	rtmetrics "runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// BenchmarkSweepBacklog is one SweepOnce over a backlog of removed rows in
// PostgreSQL, each still holding a running instance in ec2fake (no
// buckets, no latency), through the real SDK client. The rows were removed
// by the host's own UPDATE: none has a record in leakless_attempts.
// ec2fake holds 100,000 instances in every case, so that the heap the
// pass runs in is the same size whatever the backlog.
//
// The rows=N cases turn the awsec2 client's buckets off and give the pass
// all the time it needs; it must clear every row. The default-pass cases
// keep the sweeper's 30 s pass timeout, with the client's buckets off and
// at their defaults, and report how many rows the one pass cleared.
//
// Besides sec/op it reports rows/s, the peak live heap during the pass
// above the live heap just before it (peak-heap-MB: ec2fake's instances,
// launched before, do not count; its log of the pass's requests does),
// what is still live after the pass and a collection (retained-MB: that
// log, and anything the pass kept), and the collections the pass ran.
// Run it with -benchtime=1x: one iteration is one whole pass.
func BenchmarkSweepBacklog(b *testing.B) {
	unlimited := []awsec2.Option{
		awsec2.WithRateLimit(math.Inf(1), 1),
		awsec2.WithResourceRateLimit(math.Inf(1), awsec2.MaxBatchSize),
		awsec2.WithDescribeRateLimit(math.Inf(1), 1),
	}
	for _, n := range []int{2_000, 20_000, 100_000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			sweepBacklog(b, n, true, unlimited, WithPassTimeout(30*time.Minute))
		})
	}
	b.Run("default-pass/limits=off/rows=100000", func(b *testing.B) {
		sweepBacklog(b, 100_000, false, unlimited)
	})
	b.Run("default-pass/limits=default/rows=100000", func(b *testing.B) {
		sweepBacklog(b, 100_000, false, nil)
	})
}

// backlogInstances is how many instances ec2fake holds in every case: the
// backlog's own and, for the smaller backlogs, others no row holds.
const backlogInstances = 100_000

// sweepBacklog runs b.N passes, each over a fresh backlog of n rows; with
// all set, a pass that does not clear every row fails the benchmark.
func sweepBacklog(b *testing.B, n int, all bool, limits []awsec2.Option, opts ...Option) {
	db := pgtest.Open(b)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, hostSchema); err != nil {
		b.Fatalf("create host table: %v", err)
	}
	var secs, cleared, peak, retained, gcs float64
	b.StopTimer()
	for range b.N {
		fake := ec2fake.New()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fake.Launch(ec2fake.Instance{})
		}
		// Every size runs over the same fake: the live heap counts what a
		// collection's mark finds, and that includes what was allocated
		// while it ran, which takes longer the larger the heap it marks.
		for range backlogInstances - n {
			fake.Launch(ec2fake.Instance{})
		}
		st := backlogTable(b, db, ids)
		sw := newSweeperB(b, st, newCloud(b, ec2.NewFromConfig(mototest.Config(fake.URL(), fake.Client())), limits...).ec2, opts...)

		heap := startHeapWatch()
		b.StartTimer()
		rep, err := sw.SweepOnce(ctx)
		b.StopTimer()
		w := heap.stop()
		fake.Close()
		if all && (err != nil || rep.Reaped != n) {
			b.Fatalf("SweepOnce = %+v, %v; want %d reaped", rep, err, n)
		}
		secs += rep.Duration.Seconds()
		cleared += float64(rep.Reaped)
		peak = max(peak, w.peak)
		retained = max(retained, w.retained)
		gcs += w.gcs
	}
	runs := float64(b.N)
	b.ReportMetric(cleared/secs, "rows/s")
	b.ReportMetric(cleared/runs, "cleared")
	b.ReportMetric(peak/1e6, "peak-heap-MB")
	b.ReportMetric(retained/1e6, "retained-MB")
	b.ReportMetric(gcs/runs, "gcs")
}

// backlogTable fills the host table with one removed row per instance,
// clears leakless_attempts, and returns a fresh store over them.
func backlogTable(b *testing.B, db *pgtest.DB, ids []string) *store.Postgres {
	b.Helper()
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `TRUNCATE workspaces`); err != nil {
		b.Fatal(err)
	}
	_, err := db.Pool.Exec(ctx, `INSERT INTO workspaces (id, status, instance_id)
SELECT 'ws-' || lpad(u.i::text, 6, '0'), 'removed', u.instance FROM unnest($1::text[]) WITH ORDINALITY AS u (instance, i)`, ids)
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.NewPgx(db.Pool, table)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{`TRUNCATE leakless_attempts`, `VACUUM ANALYZE workspaces`, `VACUUM ANALYZE leakless_attempts`} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	return st
}

// heapWatch samples the live heap (as of the last collection) every 2 ms.
type heapWatch struct {
	before, gcBefore float64
	done             chan struct{}
	wg               sync.WaitGroup
	peak             float64 // the highest sample
}

// heapFigures is what a heapWatch saw, in bytes above the live heap
// before the pass.
type heapFigures struct{ peak, retained, gcs float64 }

func readHeap() (live, cycles float64) {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	rtmetrics.Read(s)
	return float64(s[0].Value.Uint64()), float64(s[1].Value.Uint64())
}

func startHeapWatch() *heapWatch {
	runtime.GC()
	w := &heapWatch{done: make(chan struct{})}
	w.before, w.gcBefore = readHeap()
	w.peak = w.before
	w.wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
				live, _ := readHeap()
				w.peak = max(w.peak, live)
			}
		}
	})
	return w
}

func (w *heapWatch) stop() heapFigures {
	close(w.done)
	w.wg.Wait()
	live, cycles := readHeap()
	peak := max(w.peak, live)
	runtime.GC()
	after, _ := readHeap()
	return heapFigures{peak: peak - w.before, retained: after - w.before, gcs: cycles - w.gcBefore}
}
