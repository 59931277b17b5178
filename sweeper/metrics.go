package sweeper

import (
	"context"
	"fmt"

	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/leakless/leakless/store"
)

// meterName is the instrumentation scope of every sweeper instrument.
const meterName = "github.com/leakless/leakless/sweeper"

// The sweeper's instruments, as exported through WithMeterProvider.
const (
	MetricPending           = "leakless.sweeper.pending"             // gauge: rows attempted by the last pass
	MetricReaped            = "leakless.sweeper.reaped"              // counter: rows reaped
	MetricFailed            = "leakless.sweeper.failed"              // counter: failed stops, by error_code and permanent
	MetricRowGoneSeen       = "leakless.sweeper.row_gone.seen"       // gauge: row-gone candidates in the last pass
	MetricRowGoneTerminated = "leakless.sweeper.row_gone.terminated" // counter: row-gone instances terminated
	MetricAborted           = "leakless.sweeper.aborted"             // counter: row-gone steps that terminated nothing, by reason
	MetricPassDuration      = "leakless.sweeper.pass.duration"       // histogram, seconds, by outcome
	MetricLeader            = "leakless.sweeper.leader"              // gauge: 1 while this replica leads, else 0; every replica reports it from the start of Run
	MetricKept              = "leakless.sweeper.kept"                // gauge: owned instances the keep tag kept in the last pass
	MetricDryRun            = "leakless.sweeper.dry_run"             // counter: instances a dry run would have stopped or terminated
	MetricOldestPending     = "leakless.sweeper.pending.oldest_age"  // gauge, seconds: store.Stats.OldestPending, the oldest unacknowledged pending row's age
	MetricPermanent         = "leakless.sweeper.permanent"           // gauge: store.Stats.Permanent, pending rows whose latest failure was permanent
)

// The outcome attribute of MetricPassDuration.
const (
	OutcomeCompleted = "completed" // the pass did all it found to do
	OutcomeCutShort  = "cut_short" // the pass ran out of time, or its context ended, with work left
	OutcomeAborted   = "aborted"   // the inventory step terminated nothing: a breaker or an error
)

// passBuckets are the pass duration histogram's bounds, in seconds: a pass
// takes from milliseconds (nothing due) to its timeout (30s by default).
var passBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120}

type metrics struct {
	pending, rowGoneSeen, leader metric.Int64Gauge
	kept                         metric.Int64Gauge
	reapedN, failedN, terminated metric.Int64Counter
	dryRunN                      metric.Int64Counter
	oldest                       metric.Float64Gauge
	permanent                    metric.Int64Gauge
	abortedN                     metric.Int64Counter
	duration                     metric.Float64Histogram
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter(meterName)
	var (
		out  metrics
		errs [12]error
	)
	out.pending, errs[0] = m.Int64Gauge(MetricPending, metric.WithDescription("Removed rows holding an instance that the last pass attempted."), metric.WithUnit("{row}"))
	out.reapedN, errs[1] = m.Int64Counter(MetricReaped, metric.WithDescription("Removed rows whose instance was stopped or found gone, and recorded."), metric.WithUnit("{row}"))
	out.failedN, errs[2] = m.Int64Counter(MetricFailed, metric.WithDescription("Stops that failed, by API error code."), metric.WithUnit("{instance}"))
	out.rowGoneSeen, errs[3] = m.Int64Gauge(MetricRowGoneSeen, metric.WithDescription("Owned instances no row explains, in the last pass."), metric.WithUnit("{instance}"))
	out.terminated, errs[4] = m.Int64Counter(MetricRowGoneTerminated, metric.WithDescription("Row-gone instances terminated."), metric.WithUnit("{instance}"))
	out.abortedN, errs[5] = m.Int64Counter(MetricAborted, metric.WithDescription("Row-gone steps that terminated nothing, by reason."), metric.WithUnit("{pass}"))
	out.duration, errs[6] = m.Float64Histogram(MetricPassDuration, metric.WithDescription("How long a pass took, by outcome."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(passBuckets...))
	// No unit: a unit of "1" makes Prometheus exporters name it leader_ratio.
	out.leader, errs[7] = m.Int64Gauge(MetricLeader, metric.WithDescription("1 while this replica leads, else 0."))
	out.kept, errs[8] = m.Int64Gauge(MetricKept, metric.WithDescription("Owned instances no row holds that the keep tag kept, in the last pass."), metric.WithUnit("{instance}"))
	out.dryRunN, errs[9] = m.Int64Counter(MetricDryRun, metric.WithDescription("Instances a dry run would have stopped or terminated."), metric.WithUnit("{instance}"))
	out.oldest, errs[10] = m.Float64Gauge(MetricOldestPending, metric.WithDescription("Age of the oldest pending row not acknowledged, by the store's clock, from its first recorded attempt or grace."), metric.WithUnit("s"))
	out.permanent, errs[11] = m.Int64Gauge(MetricPermanent, metric.WithDescription("Pending rows whose latest failure was permanent: leaks retrying will not end."), metric.WithUnit("{row}"))
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("sweeper: create instrument: %w", err)
		}
	}
	return &out, nil
}

func (m *metrics) reaped(ctx context.Context) { m.reapedN.Add(ctx, 1) }

func (m *metrics) failed(ctx context.Context, code string, permanent bool) {
	if code == "" {
		code = "unknown"
	}
	m.failedN.Add(ctx, 1, metric.WithAttributes(attribute.String("error_code", code), attribute.Bool("permanent", permanent)))
}

func (m *metrics) aborted(ctx context.Context, reason string) {
	m.abortedN.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func (m *metrics) rowGone(ctx context.Context, seen, terminated int) {
	m.rowGoneSeen.Record(ctx, int64(seen))
	if terminated > 0 {
		m.terminated.Add(ctx, int64(terminated))
	}
}

func (m *metrics) pass(ctx context.Context, r Report, outcome string) {
	m.pending.Record(ctx, int64(r.Pending))
	m.kept.Record(ctx, int64(r.Kept))
	if r.DryRun > 0 {
		m.dryRunN.Add(ctx, int64(r.DryRun))
	}
	m.duration.Record(ctx, r.Duration.Seconds(), metric.WithAttributes(attribute.String("outcome", outcome)))
}

func (m *metrics) leading(ctx context.Context, yes bool) {
	var v int64
	if yes {
		v = 1
	}
	m.leader.Record(ctx, v)
}

// statser is a store that reports its backlog: store.Postgres and
// store.Memory are.
type statser interface {
	Stats(ctx context.Context) (store.Stats, error)
}

// backlogTimeout bounds the Stats read a follower makes between lease
// checks; a leader's read is bounded by its pass.
const backlogTimeout = 5 * time.Second

// recordBacklog reads the store's Stats, when the store reports them, and
// records MetricOldestPending and MetricPermanent. The leader reads them
// once per pass and every follower once per interval, so every replica
// exports both from the start and max() across replicas is the fleet's
// answer. A failed read records nothing: the gauges keep their last
// value, and the pass's or the lease's own errors tell of the database.
func (s *Sweeper) recordBacklog(ctx context.Context) {
	st, ok := s.store.(statser)
	if !ok {
		return
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		s.cfg.log.LogAttrs(ctx, slog.LevelDebug, "sweeper: backlog stats", slog.Any("error", err))
		return
	}
	s.metrics.oldest.Record(ctx, stats.OldestPending.Seconds())
	s.metrics.permanent.Record(ctx, int64(stats.Permanent))
}

// followBacklog is recordBacklog for a replica that does not lead: at most
// once per interval, on a timeout of its own. last is when it last read.
func (s *Sweeper) followBacklog(ctx context.Context, last *time.Time) {
	if !last.IsZero() && time.Since(*last) < s.cfg.interval {
		return
	}
	*last = time.Now()
	ctx, cancel := context.WithTimeout(ctx, backlogTimeout)
	defer cancel()
	s.recordBacklog(ctx)
}

// attributed returns mp with attrs added to every measurement of the
// instruments the sweeper creates: counters, gauges and histograms.
func attributed(mp metric.MeterProvider, attrs []attribute.KeyValue) metric.MeterProvider {
	return attributedProvider{mp, metric.WithAttributes(attrs...)}
}

type attributedProvider struct {
	metric.MeterProvider
	attrs metric.MeasurementOption
}

func (p attributedProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return attributedMeter{p.MeterProvider.Meter(name, opts...), p.attrs}
}

type attributedMeter struct {
	metric.Meter
	attrs metric.MeasurementOption
}

func (m attributedMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	i, err := m.Meter.Int64Counter(name, opts...)
	return attributedInt64Counter{i, m.attrs}, err
}

func (m attributedMeter) Int64Gauge(name string, opts ...metric.Int64GaugeOption) (metric.Int64Gauge, error) {
	i, err := m.Meter.Int64Gauge(name, opts...)
	return attributedInt64Gauge{i, m.attrs}, err
}

func (m attributedMeter) Float64Gauge(name string, opts ...metric.Float64GaugeOption) (metric.Float64Gauge, error) {
	i, err := m.Meter.Float64Gauge(name, opts...)
	return attributedFloat64Gauge{i, m.attrs}, err
}

func (m attributedMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	i, err := m.Meter.Float64Histogram(name, opts...)
	return attributedFloat64Histogram{i, m.attrs}, err
}

// The measurement's own attributes come first; the sweeper's added ones
// win on a shared key.
type attributedInt64Counter struct {
	metric.Int64Counter
	attrs metric.MeasurementOption
}

func (i attributedInt64Counter) Add(ctx context.Context, v int64, opts ...metric.AddOption) {
	i.Int64Counter.Add(ctx, v, append(opts, i.attrs)...)
}

type attributedInt64Gauge struct {
	metric.Int64Gauge
	attrs metric.MeasurementOption
}

func (i attributedInt64Gauge) Record(ctx context.Context, v int64, opts ...metric.RecordOption) {
	i.Int64Gauge.Record(ctx, v, append(opts, i.attrs)...)
}

type attributedFloat64Histogram struct {
	metric.Float64Histogram
	attrs metric.MeasurementOption
}

func (i attributedFloat64Histogram) Record(ctx context.Context, v float64, opts ...metric.RecordOption) {
	i.Float64Histogram.Record(ctx, v, append(opts, i.attrs)...)
}

type attributedFloat64Gauge struct {
	metric.Float64Gauge
	attrs metric.MeasurementOption
}

func (i attributedFloat64Gauge) Record(ctx context.Context, v float64, opts ...metric.RecordOption) {
	i.Float64Gauge.Record(ctx, v, append(opts, i.attrs)...)
}
