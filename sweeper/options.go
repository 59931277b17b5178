package sweeper

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/teardown"
)

// Defaults for the options below.
const (
	DefaultInterval       = 60 * time.Second
	DefaultPassTimeout    = 30 * time.Second
	DefaultBatchSize      = 500
	DefaultConcurrency    = teardown.DefaultConcurrency
	DefaultRowBackoffBase = 1 * time.Minute
	DefaultRowBackoffMax  = 1 * time.Hour
	// DefaultNotFoundSettle is how long EC2 must keep answering that an
	// instance does not exist before the sweeper believes it: a new
	// instance can be invisible for a minute or more after launch.
	DefaultNotFoundSettle = 2 * time.Minute
)

// ErrConfig is wrapped by every error [New] returns for a bad option value
// or a missing dependency.
var ErrConfig = errors.New("sweeper: invalid configuration")

// Option configures a [Sweeper].
type Option func(*config)

type config struct {
	interval      time.Duration
	passTimeout   time.Duration
	batchSize     int
	concurrency   int
	retry         []teardown.Option
	rowBase       time.Duration
	rowMax        time.Duration
	sink          events.Sink
	log           *slog.Logger
	meterProvider metric.MeterProvider
	metricAttrs   []attribute.KeyValue // WithMetricAttributes: on every measurement
	leader        Leader
	inventory     teardown.Inventory
	rowGone       bool    // WithRowGone: reap every owned instance no row explains
	guard         RowGone // the guards of every reaping from the inventory, defaults filled
	dryRun        bool
	notFoundAfter time.Duration
	dependents    *dependentSweep  // WithDependents (dependents.go)
	now           func() time.Time // stamps events only; no decision reads it. Tests replace it

	err error // first invalid option seen
}

func (c *config) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
}

// newConfig applies opts over the defaults and validates the result.
func newConfig(opts []Option) config {
	c := config{
		interval:      DefaultInterval,
		passTimeout:   DefaultPassTimeout,
		batchSize:     DefaultBatchSize,
		concurrency:   DefaultConcurrency,
		rowBase:       DefaultRowBackoffBase,
		rowMax:        DefaultRowBackoffMax,
		log:           slog.New(slog.DiscardHandler),
		meterProvider: noop.NewMeterProvider(),
		notFoundAfter: DefaultNotFoundSettle,
		now:           time.Now,
	}
	c.guard, _ = RowGone{}.withDefaults()
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if len(c.metricAttrs) > 0 {
		c.meterProvider = attributed(c.meterProvider, c.metricAttrs)
	}
	return c
}

// WithInterval sets the time between the end of one pass and the start of
// the next, before jitter of up to a tenth either way (so replicas started
// together drift apart). The default is 60s; d must be positive.
func WithInterval(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.invalid("interval must be positive, got %v", d)
			return
		}
		c.interval = d
	}
}

// WithPassTimeout bounds one pass: re-drives, row-gone reaping and the
// bookkeeping that records their results. A pass stops taking new pages
// when a quarter of it remains, so results are always written. The default
// is 30s; d must be positive.
func WithPassTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.invalid("pass timeout must be positive, got %v", d)
			return
		}
		c.passTimeout = d
	}
}

// WithBatchSize sets how many pending rows a pass reads from the store at a
// time; each page is stopped with one [teardown.StopAll]. The default, 500,
// is one EC2 TerminateInstances call; n must be at least 1.
func WithBatchSize(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.invalid("batch size must be at least 1, got %d", n)
			return
		}
		c.batchSize = n
	}
}

// WithConcurrency bounds how many stops (or batches) run at once within a
// page. The default is 8; n must be at least 1.
func WithConcurrency(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.invalid("concurrency must be at least 1, got %d", n)
			return
		}
		c.concurrency = n
	}
}

// WithRetry sets the retry options every stop uses within a pass, as for
// [teardown.StopAll]; they are applied after the sweeper's own concurrency,
// so they may override it. Retries within a pass are short; a row that
// still fails waits for its per-row backoff ([WithRowBackoff]).
func WithRetry(opts ...teardown.Option) Option {
	return func(c *config) { c.retry = append(c.retry, opts...) }
}

// WithRowBackoff sets the per-row backoff after a failed pass: a row that
// failed n times before is not attempted again for min(max, base·2^n). A
// permanent error waits max straight away. The default is 1m, 1h; both must
// be positive and max must not be less than base.
func WithRowBackoff(base, max time.Duration) Option {
	return func(c *config) {
		switch {
		case base <= 0 || max <= 0:
			c.invalid("row backoff durations must be positive, got base %v, max %v", base, max)
			return
		case max < base:
			c.invalid("row backoff max %v is less than base %v", max, base)
			return
		}
		c.rowBase, c.rowMax = base, max
	}
}

// WithEvents sends an event for every outcome (reaped, failed, row-gone
// detected or terminated, aborted, dry run) to sink. Without it events are
// only logged. A sink error is logged and never fails a pass.
func WithEvents(sink events.Sink) Option {
	return func(c *config) {
		if sink == nil {
			c.invalid("events sink is nil")
			return
		}
		c.sink = sink
	}
}

// WithLogger sets the structured logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l == nil {
			c.invalid("logger is nil")
			return
		}
		c.log = l
	}
}

// WithMeterProvider records the sweeper's metrics through mp. The default is
// OpenTelemetry's no-op provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp == nil {
			c.invalid("meter provider is nil")
			return
		}
		c.meterProvider = mp
	}
}

// WithMetricAttributes adds attrs to every measurement the sweeper
// records, whichever meter provider records them, so that several sweepers
// in one process (one per location under [RunAll], say) report apart:
// each location's leakless.sweeper.leader, instead of whichever sweeper
// recorded last. Given more than once, the attributes add up.
func WithMetricAttributes(attrs ...attribute.KeyValue) Option {
	return func(c *config) { c.metricAttrs = append(c.metricAttrs, attrs...) }
}

// WithLeader makes [Sweeper.Run] sweep only while l says this replica leads.
// A store Lease satisfies [Leader]. Run calls Lead every third of the
// lease's time to live when l has a method TTL() time.Duration, and every
// [DefaultLeaseRenewal] (5s) otherwise, so give such a lease a time to live
// of at least 15s. Without a leader every replica sweeps, which is safe
// (every write is guarded) but spends API budget several times over.
func WithLeader(l Leader) Option {
	return func(c *config) {
		if l == nil {
			c.invalid("leader is nil")
			return
		}
		c.leader = l
	}
}

// WithRowGone turns on row-gone reaping: terminating owned instances that no
// row explains, as described on [RowGone]. It is off by default. Zero fields
// of cfg take their defaults; negative ones, or a MaxFraction above 1, are
// an error from [New]. It implies [WithInventory](inv), and cfg's guards
// apply to that reaping too.
func WithRowGone(inv teardown.Inventory, cfg RowGone) Option {
	return func(c *config) {
		if !c.setInventory(inv, "row-gone inventory") {
			return
		}
		rg, err := cfg.withDefaults()
		if err != nil {
			c.invalid("%v", err)
			return
		}
		c.rowGone, c.guard = true, rg
	}
}

// WithInventory gives the sweeper the owned instances to look at without
// turning on row-gone reaping. Each pass then terminates an owned instance
// only when its resource-id tag names a row that is removed and no row
// holds it: the row says it is deleted, so nothing can be using it. That
// is the leak a create that launched but never recorded its instance
// leaves once its row is deleted, which re-driving removed rows cannot
// see. The guards of [RowGone] apply with their defaults (or those given
// to [WithRowGone]): confirmation across passes, the breakers, the keep
// tag and dry run. An inventory that implements [teardown.Describer] lets
// the sweeper re-check candidates by id; any other is listed a second time.
func WithInventory(inv teardown.Inventory) Option {
	return func(c *config) { c.setInventory(inv, "inventory") }
}

func (c *config) setInventory(inv teardown.Inventory, what string) bool {
	switch {
	case inv == nil:
		c.invalid("%s is nil", what)
		return false
	case c.inventory != nil && c.inventory != inv:
		c.invalid("WithInventory and WithRowGone name different inventories")
		return false
	}
	c.inventory = inv
	return true
}

// WithDryRun makes the whole sweeper touch nothing: no stop, no
// termination, no write to the store. Each pass still reads everything
// and emits [events.TypeDryRun] for every instance it would have stopped
// or terminated, with the reason, so a dry run shows exactly what a real
// one would do. [RowGone].DryRun is the narrower switch: only row-gone
// terminations are held back.
func WithDryRun() Option {
	return func(c *config) { c.dryRun = true }
}

// WithNotFoundSettle sets how long a removed row's instance must keep being
// reported as not found ([teardown.ErrNotFound]: EC2 neither knows nor
// lists it) before the sweeper takes it as gone and clears the row. Until
// then the row keeps its instance and is retried with its backoff, since
// EC2 answers NotFound for an instance it has not yet propagated. The
// window is measured by the store's clock. The default is 2m; d must not
// be negative, and 0 takes the first answer as final.
func WithNotFoundSettle(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.invalid("not-found settle window must not be negative, got %v", d)
			return
		}
		c.notFoundAfter = d
	}
}

// withClock replaces the clock that stamps events.
func withClock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}
