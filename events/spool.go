package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/metric"
)

// Defaults for [Spool]'s options.
const (
	// DefaultSpoolLimit is how many events a Spooler holds when
	// WithSpoolLimit is not given.
	DefaultSpoolLimit = 10_000
	// DefaultSpoolBackoff and DefaultSpoolMaxBackoff bound the wait
	// between a Spooler's tries of its sink while it holds events.
	DefaultSpoolBackoff    = 250 * time.Millisecond
	DefaultSpoolMaxBackoff = 5 * time.Second
)

// The Spooler's instruments, as exported through WithSpoolMeterProvider.
const (
	MetricSpoolQueued  = "leakless.events.spool.queued"  // gauge: events held, waiting for the sink
	MetricSpoolDropped = "leakless.events.spool.dropped" // counter: events given up on
)

// spoolBatch is the most events a Spooler hands its sink at once.
const spoolBatch = 500

// ErrSpoolClosed is returned by a [Spooler]'s Emit and EmitBatch after
// Close.
var ErrSpoolClosed = errors.New("events: spool closed")

// SpoolOption configures [Spool].
type SpoolOption func(*spoolConfig)

type spoolConfig struct {
	limit     int
	base, max time.Duration
	log       *slog.Logger
	meters    metric.MeterProvider
}

// WithSpoolLimit bounds how many events the Spooler holds; past it, the
// oldest is dropped. The default is [DefaultSpoolLimit]; n <= 0 means the
// default.
func WithSpoolLimit(n int) SpoolOption {
	return func(c *spoolConfig) { c.limit = n }
}

// WithSpoolBackoff sets the wait between tries of the sink while events are
// held: base, doubling up to max. The defaults are [DefaultSpoolBackoff]
// and [DefaultSpoolMaxBackoff]; a value <= 0 means its default.
func WithSpoolBackoff(base, max time.Duration) SpoolOption {
	return func(c *spoolConfig) { c.base, c.max = base, max }
}

// WithSpoolLogger is where the Spooler reports each event it drops, at
// level Error, in full. The default is slog.Default().
func WithSpoolLogger(l *slog.Logger) SpoolOption {
	return func(c *spoolConfig) { c.log = l }
}

// WithSpoolMeterProvider exports the Spooler's figures as OpenTelemetry
// instruments: [MetricSpoolQueued], an observable gauge of the events
// held, and [MetricSpoolDropped], a counter of the events dropped. Close
// unregisters the gauge.
func WithSpoolMeterProvider(mp metric.MeterProvider) SpoolOption {
	return func(c *spoolConfig) { c.meters = mp }
}

// SpoolStats are a [Spooler]'s figures.
type SpoolStats struct {
	Queued  int64 // events held now, waiting for the sink
	Written int64 // events the sink recorded, directly or from the queue
	Dropped int64 // events given up on: the oldest past the limit, or ones the sink rejected from the queue
}

// Spooler is the [BatchSink] returned by [Spool].
type Spooler struct {
	sink Sink
	cfg  spoolConfig

	mu       sync.Mutex
	queue    []Event // waiting, oldest first
	inflight int     // events taken from the queue's head and being written
	draining bool    // the drain goroutine is running
	closed   bool
	stats    SpoolStats
	stop     context.CancelFunc // ends the drain's writes, on Close's deadline
	runCtx   context.Context
	done     chan struct{} // closed when the drain goroutine exits
	wake     chan struct{} // Close tells the drain not to wait out its backoff

	dropped metric.Int64Counter
	reg     metric.Registration
}

// Spool returns a sink that carries events to s across outages longer than
// s's own retries. While nothing is held, Emit writes to s directly and
// returns its result; if s fails, the event is held in memory and Emit
// returns nil at once. While anything is held, new events are held behind
// it without trying s, so order is kept. A goroutine, started only while
// events are held and gone once they are written, tries s again with
// backoff and writes what is held in order, in batches through [EmitAll],
// so a Postgres sink gets them in one COPY.
//
// At most [WithSpoolLimit] events are held; past that the oldest is
// dropped, logged in full and counted. An event s rejects outright (its
// payload is not JSON, or the database refused its values) is not held:
// Emit returns the error, and one found in the queue is dropped the same
// way. Events held are stamped with the time of Emit when their At is zero.
//
// Spool one sink at a time: a Spooler in front of a [Multi] whose sinks
// fail separately would hold, and write again, events that some of them
// already recorded; give each sink of a Multi its own Spooler instead.
//
// The Spooler holds events only in memory: they are lost if the process
// ends. Call [Spooler.Close] to write what is held before exiting; until
// Close, a Spooler that holds nothing runs no goroutine.
func Spool(s Sink, opts ...SpoolOption) *Spooler {
	c := spoolConfig{}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.limit <= 0 {
		c.limit = DefaultSpoolLimit
	}
	if c.base <= 0 {
		c.base = DefaultSpoolBackoff
	}
	if c.max <= 0 {
		c.max = DefaultSpoolMaxBackoff
	}
	c.max = max(c.max, c.base)
	if c.log == nil {
		c.log = slog.Default()
	}
	if s == nil {
		s = BestEffort(nil, c.log) // nowhere to write: the log keeps each event
	}
	sp := &Spooler{sink: s, cfg: c, wake: make(chan struct{}, 1)}
	sp.runCtx, sp.stop = context.WithCancel(context.Background())
	if c.meters != nil {
		if err := sp.instrument(c.meters); err != nil {
			c.log.Warn("events: spool metrics not exported", slog.Any("error", err))
		}
	}
	return sp
}

func (sp *Spooler) instrument(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/leakless/leakless/events")
	queued, err := m.Int64ObservableGauge(MetricSpoolQueued,
		metric.WithDescription("Events held by the spool, waiting for the sink."), metric.WithUnit("{event}"))
	if err != nil {
		return err
	}
	if sp.dropped, err = m.Int64Counter(MetricSpoolDropped,
		metric.WithDescription("Events the spool gave up on."), metric.WithUnit("{event}")); err != nil {
		return err
	}
	sp.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(queued, sp.Stats().Queued)
		return nil
	}, queued)
	return err
}

// Emit writes e to the sink, or holds it, as [Spool] describes. It returns
// nil once e is written or held, the sink's error for an event the sink
// rejects, and [ErrSpoolClosed] after Close.
func (sp *Spooler) Emit(ctx context.Context, e Event) error {
	events := keyed([]Event{e})
	return sp.emit(ctx, events, func() error { return sp.sink.Emit(ctx, events[0]) })
}

// EmitBatch is Emit for many events, in order: while nothing is held it
// hands them to the sink through [EmitAll], and holds whatever the sink
// did not record.
func (sp *Spooler) EmitBatch(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	events = keyed(events)
	return sp.emit(ctx, events, func() error { return EmitAll(ctx, sp.sink, events) })
}

// keyed returns events with a random Key on each that has none, before
// the first write: the Spooler writes again whatever a failure may have
// left unwritten, and with a key a write that did commit is not stored
// twice. The caller's slice is not changed.
func keyed(events []Event) []Event {
	out := slices.Clone(events)
	for i := range out {
		if out[i].Key == "" {
			b := make([]byte, 16)
			_, _ = rand.Read(b) // never fails; it crashes the program instead
			out[i].Key = hex.EncodeToString(b)
		}
	}
	return out
}

// emit holds events if anything is held already; else it writes them with
// write and holds what write did not record.
func (sp *Spooler) emit(ctx context.Context, events []Event, write func() error) error {
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		return ErrSpoolClosed
	}
	if sp.holding() {
		sp.hold(ctx, stamp(events, time.Now()))
		sp.mu.Unlock()
		return nil
	}
	sp.mu.Unlock()

	now := time.Now()
	err := write()
	n := len(events)
	if err != nil {
		n = written(err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.stats.Written += int64(n)
	if err == nil {
		return nil
	}
	if rejected(err) {
		return err
	}
	if sp.closed {
		return fmt.Errorf("%w: %w", ErrSpoolClosed, err)
	}
	sp.hold(ctx, stamp(events[n:], now))
	return nil
}

// Stats returns the Spooler's figures.
func (sp *Spooler) Stats() SpoolStats {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	st := sp.stats
	st.Queued = int64(len(sp.queue) + sp.inflight)
	return st
}

// Close writes what the Spooler holds, until ctx ends, and stops its
// goroutine; when it returns, no goroutine of the Spooler's is left. The
// error, if any, says how many events were not written; they are lost.
// Emit after Close returns [ErrSpoolClosed]. Closing twice returns nil.
func (sp *Spooler) Close(ctx context.Context) error {
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		return nil
	}
	sp.closed = true
	draining, done := sp.draining, sp.done
	sp.mu.Unlock()
	if sp.reg != nil {
		defer sp.reg.Unregister()
	}
	defer sp.stop()

	if draining {
		select {
		case sp.wake <- struct{}{}:
		default:
		}
		select {
		case <-done:
		case <-ctx.Done():
			sp.stop() // cut the write in flight short
			<-done
		}
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if lost := len(sp.queue); lost > 0 {
		sp.queue = nil
		return fmt.Errorf("events: spool closed with %d events not written: %w", lost, context.Cause(ctx))
	}
	return nil
}

// holding reports whether any event is held, so new ones must queue behind
// it. sp.mu is held.
func (sp *Spooler) holding() bool { return len(sp.queue) > 0 || sp.inflight > 0 }

// hold queues events, dropping the oldest past the limit, and makes sure
// the drain runs. sp.mu is held.
func (sp *Spooler) hold(ctx context.Context, events []Event) {
	sp.queue = append(sp.queue, events...)
	sp.trim(ctx)
	if !sp.draining && len(sp.queue) > 0 {
		sp.draining = true
		sp.done = make(chan struct{})
		go sp.drain(sp.done)
	}
}

// trim drops the oldest waiting events while more than the limit are
// held. sp.mu is held.
func (sp *Spooler) trim(ctx context.Context) {
	over := len(sp.queue) + sp.inflight - sp.cfg.limit
	if over <= 0 {
		return
	}
	over = min(over, len(sp.queue))
	for _, e := range sp.queue[:over] {
		sp.drop(ctx, e, "spool full")
	}
	clear(sp.queue[:over])
	sp.queue = sp.queue[over:]
}

// drop logs and counts an event given up on. sp.mu is held.
func (sp *Spooler) drop(ctx context.Context, e Event, why string, attrs ...slog.Attr) {
	sp.stats.Dropped++
	if sp.dropped != nil {
		sp.dropped.Add(ctx, 1)
	}
	attrs = append(attrs, slog.String("reason", why), slog.String("type", e.Type), slog.String("subject", e.Subject),
		slog.Time("at", e.At), slog.Any("payload", e.Payload))
	sp.cfg.log.LogAttrs(ctx, slog.LevelError, "events: spooled event dropped", attrs...)
}

// drain writes the queue to the sink, oldest first, until it is empty,
// waiting between failed tries; after Close it stops at the first wait
// that ctx (Close's) does not allow. It runs on its own goroutine, one at
// a time, and closes done when it exits.
func (sp *Spooler) drain(done chan struct{}) {
	defer close(done)
	delay := sp.cfg.base
	for {
		sp.mu.Lock()
		if len(sp.queue) == 0 || sp.runCtx.Err() != nil {
			sp.draining = false
			sp.mu.Unlock()
			return
		}
		closing := sp.closed
		sp.mu.Unlock()

		if !closing {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-sp.wake: // Close: try now
				t.Stop()
			case <-sp.runCtx.Done():
				t.Stop()
			}
		}
		if sp.writeHead() {
			delay = sp.cfg.base
			continue
		}
		if closing && sp.runCtx.Err() == nil {
			// Closing: keep trying until Close's deadline, still paced.
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-sp.runCtx.Done():
				t.Stop()
			}
		}
		delay = min(2*delay, sp.cfg.max)
	}
}

// writeHead writes the oldest held events and reports whether it made
// progress.
func (sp *Spooler) writeHead() bool {
	sp.mu.Lock()
	batch := append([]Event(nil), sp.queue[:min(len(sp.queue), spoolBatch)]...)
	sp.inflight = len(batch)
	clear(sp.queue[:len(batch)])
	sp.queue = sp.queue[len(batch):]
	sp.mu.Unlock()

	err := EmitAll(sp.runCtx, sp.sink, batch)
	n := len(batch)
	if err != nil {
		n = written(err)
	}
	rest := batch[n:]
	var dropped []Event
	var dropErr error
	if err != nil && rejected(err) {
		// Something in the batch will never be written; find it one event
		// at a time rather than hold the queue behind it.
		for len(rest) > 0 {
			e := rest[0]
			err = sp.sink.Emit(sp.runCtx, e)
			if err != nil && !rejected(err) {
				break
			}
			if err != nil {
				dropped, dropErr = append(dropped, e), err
			} else {
				n++
			}
			rest = rest[1:]
		}
	}

	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.inflight = 0
	sp.stats.Written += int64(n)
	for _, e := range dropped {
		sp.drop(sp.runCtx, e, "rejected by the sink", slog.Any("error", dropErr))
	}
	if len(rest) > 0 {
		sp.queue = append(rest[:len(rest):len(rest)], sp.queue...)
		sp.trim(sp.runCtx)
	}
	return n > 0 || len(dropped) > 0
}

// stamp returns events ready to be held: a zero At becomes now, the time
// of the Emit, not of the write; payload maps are copied, as the caller
// may change its own.
func stamp(events []Event, now time.Time) []Event {
	out := make([]Event, len(events))
	for i, e := range events {
		if e.At.IsZero() {
			e.At = now
		}
		e.Payload = maps.Clone(e.Payload)
		out[i] = e
	}
	return out
}

// rejected reports whether err says the sink refused the event itself, so
// trying again cannot help: its payload is not JSON, or the database found
// its values invalid (class 22, data exception, such as a NUL byte in its
// type) or breaking a constraint (class 23). Everything else — connections,
// resources, locks, a table not yet migrated — is worth waiting out.
func rejected(err error) bool {
	if errors.Is(err, ErrPayload) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}
