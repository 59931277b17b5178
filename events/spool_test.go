package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/pgtest"
)

var errDown = errors.New("connection refused")

// switchSink is a BatchSink that is up or down on cue, and rejects the
// events reject says it must.
type switchSink struct {
	mu      sync.Mutex
	down    bool
	got     []events.Event
	batches []int // the size of each EmitBatch it recorded
	reject  func(events.Event) bool
}

func (s *switchSink) set(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

func (s *switchSink) Emit(ctx context.Context, e events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reject != nil && s.reject(e) {
		return &pgconn.PgError{Code: "22021", Message: "invalid byte sequence"}
	}
	if s.down {
		return errDown
	}
	s.got = append(s.got, e)
	return nil
}

func (s *switchSink) EmitBatch(ctx context.Context, es []events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range es {
		if s.reject != nil && s.reject(e) {
			return &pgconn.PgError{Code: "22021", Message: "invalid byte sequence"}
		}
	}
	if s.down {
		return errDown
	}
	s.got = append(s.got, es...)
	s.batches = append(s.batches, len(es))
	return nil
}

func (s *switchSink) subjects() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.got {
		out = append(out, e.Subject)
	}
	return strings.Join(out, " ")
}

func fast() events.SpoolOption {
	return events.WithSpoolBackoff(5*time.Millisecond, 20*time.Millisecond)
}

// eventually polls cond for up to five seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func closeSpool(t *testing.T, sp *events.Spooler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sp.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestSpoolHoldsEventsInOrderUntilTheSinkIsBack(t *testing.T) {
	sink := &switchSink{}
	sp := events.Spool(sink, fast())
	ctx := context.Background()
	emit := func(subject string) {
		t.Helper()
		if err := sp.Emit(ctx, events.Event{Type: "t", Subject: subject}); err != nil {
			t.Fatalf("Emit(%s) = %v; want nil", subject, err)
		}
	}
	emit("1")
	sink.set(true)
	emit("2") // fails: held
	sink.set(false)
	emit("3") // the sink is up, but 2 is held: 3 waits behind it
	if err := sp.EmitBatch(ctx, []events.Event{{Type: "t", Subject: "4"}, {Type: "t", Subject: "5"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the queue to drain", func() bool { return sp.Stats().Queued == 0 })
	if got := sink.subjects(); got != "1 2 3 4 5" {
		t.Errorf("sink recorded %q; want %q, in emit order", got, "1 2 3 4 5")
	}
	if st := sp.Stats(); st.Written != 5 || st.Dropped != 0 {
		t.Errorf("Stats = %+v; want 5 written, none dropped", st)
	}
	// Held events were stamped when emitted, not when written.
	for _, e := range sink.got[1:] {
		if e.At.IsZero() {
			t.Errorf("held event %s has a zero At; want the time of its Emit", e.Subject)
		}
	}
	closeSpool(t, sp)
	if err := sp.Emit(ctx, events.Event{Type: "t"}); !errors.Is(err, events.ErrSpoolClosed) {
		t.Errorf("Emit after Close = %v; want ErrSpoolClosed", err)
	}
}

func TestSpoolDrainsInBatches(t *testing.T) {
	sink := &switchSink{down: true}
	sp := events.Spool(sink, fast())
	for i := range 1200 {
		_ = sp.Emit(context.Background(), events.Event{Type: "t", Subject: fmt.Sprint(i)})
	}
	if q := sp.Stats().Queued; q != 1200 {
		t.Fatalf("Queued = %d; want 1200 while the sink is down", q)
	}
	sink.set(false)
	eventually(t, "the queue to drain", func() bool { return sp.Stats().Queued == 0 })
	closeSpool(t, sp)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.got) != 1200 || fmt.Sprint(sink.batches) != "[500 500 200]" {
		t.Errorf("recorded %d events in batches %v; want 1200 in [500 500 200]", len(sink.got), sink.batches)
	}
}

func TestSpoolFullDropsTheOldestAndSaysSo(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	sink := &switchSink{down: true}
	sp := events.Spool(sink, events.WithSpoolLimit(3), events.WithSpoolLogger(log), events.WithSpoolBackoff(time.Hour, time.Hour))
	for i := 1; i <= 3; i++ {
		_ = sp.Emit(context.Background(), events.Event{Type: "t", Subject: fmt.Sprint(i)})
	}
	if st := sp.Stats(); st.Queued != 3 || st.Dropped != 0 || logged.Len() != 0 {
		t.Fatalf("at the limit: Stats %+v, log %q; want 3 queued, nothing dropped or logged", st, logged.String())
	}
	_ = sp.Emit(context.Background(), events.Event{Type: "t", Subject: "4"})
	_ = sp.Emit(context.Background(), events.Event{Type: "t", Subject: "5"})
	if st := sp.Stats(); st.Queued != 3 || st.Dropped != 2 {
		t.Errorf("past the limit: Stats %+v; want 3 queued, 2 dropped", st)
	}
	out := logged.String()
	if strings.Count(out, "events: spooled event dropped") != 2 || !strings.Contains(out, "subject=1") || !strings.Contains(out, "subject=2") || strings.Contains(out, "subject=3") {
		t.Errorf("log %q; want events 1 and 2, the oldest, logged as dropped", out)
	}
	sink.set(false)
	if err := sp.Close(context.Background()); err != nil {
		t.Fatalf("Close with the sink back = %v", err)
	}
	if got := sink.subjects(); got != "3 4 5" {
		t.Errorf("sink recorded %q; want the 3 newest, %q", got, "3 4 5")
	}
}

func TestSpoolCloseWithTheSinkDownCountsTheLoss(t *testing.T) {
	sink := &switchSink{down: true}
	sp := events.Spool(sink, fast())
	for i := range 7 {
		_ = sp.Emit(context.Background(), events.Event{Type: "t", Subject: fmt.Sprint(i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := sp.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "7 events not written") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with the sink down = %v; want an error counting 7 events lost, wrapping the deadline", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
		t.Errorf("Close took %v; want it to keep trying until its 200ms deadline", took)
	}
	if err := sp.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
}

func TestSpoolDoesNotHoldWhatTheSinkRejects(t *testing.T) {
	var logged bytes.Buffer
	sink := &switchSink{reject: func(e events.Event) bool { return e.Type == "bad" }}
	sp := events.Spool(sink, fast(), events.WithSpoolLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	ctx := context.Background()
	if err := sp.Emit(ctx, events.Event{Type: "bad", Subject: "x"}); err == nil {
		t.Error("Emit of an event the sink rejects = nil; want the sink's error")
	}
	if err := sp.Emit(ctx, events.Event{Type: "t", Payload: map[string]any{"c": make(chan int)}}); err != nil {
		t.Errorf("Emit with a bad payload to a sink that does not check = %v", err)
	}
	// One held behind an outage is found and dropped, not left blocking the queue.
	sink.set(true)
	_ = sp.Emit(ctx, events.Event{Type: "t", Subject: "1"})
	_ = sp.Emit(ctx, events.Event{Type: "bad", Subject: "2"})
	_ = sp.Emit(ctx, events.Event{Type: "t", Subject: "3"})
	sink.set(false)
	eventually(t, "the queue to drain", func() bool { return sp.Stats().Queued == 0 })
	closeSpool(t, sp)
	if got := sink.subjects(); got != " 1 3" {
		t.Errorf("sink recorded %q; want %q", got, " 1 3")
	}
	if st := sp.Stats(); st.Dropped != 1 || !strings.Contains(logged.String(), "rejected by the sink") {
		t.Errorf("Stats %+v, log %q; want the rejected event dropped and logged", st, logged.String())
	}
}

func TestSpoolMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	sink := &switchSink{down: true}
	sp := events.Spool(sink, events.WithSpoolLimit(2), events.WithSpoolMeterProvider(mp),
		events.WithSpoolBackoff(time.Hour, time.Hour), events.WithSpoolLogger(slog.New(slog.DiscardHandler)))
	for range 5 {
		_ = sp.Emit(context.Background(), events.Event{Type: "t"})
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				got[m.Name] = d.DataPoints[0].Value
			case metricdata.Sum[int64]:
				got[m.Name] = d.DataPoints[0].Value
			}
		}
	}
	if got[events.MetricSpoolQueued] != 2 || got[events.MetricSpoolDropped] != 3 {
		t.Errorf("metrics %v; want %s 2 and %s 3", got, events.MetricSpoolQueued, events.MetricSpoolDropped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = sp.Close(ctx)
}

// An outage longer than the sink's write timeout: Emit during it returns
// at once, and once the database is back every event is stored, once, in
// emit order.
func TestSpoolCarriesEventsAcrossAnOutage(t *testing.T) {
	const (
		outage       = 3 * time.Second
		writeTimeout = 300 * time.Millisecond
	)
	forEachDriver(t, func(t *testing.T, d driver) {
		ctx := context.Background()
		db := pgtest.Open(t)
		proxied, proxy := throughProxy(t, db)
		pg := d.dial(t, proxied, events.WithWriteTimeout(writeTimeout))
		if err := pg.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		sp := events.Spool(pg, events.WithSpoolBackoff(50*time.Millisecond, 500*time.Millisecond))

		proxy.Outage(outage)
		began := time.Now()
		var slowest time.Duration
		for i := range 100 {
			start := time.Now()
			if err := sp.Emit(ctx, events.Event{Type: "outage", Subject: fmt.Sprint(i)}); err != nil {
				t.Fatalf("Emit %d during the outage = %v; want nil", i, err)
			}
			slowest = max(slowest, time.Since(start))
			time.Sleep(20 * time.Millisecond) // spread over the first 2s
		}
		if during := time.Since(began); during > outage {
			t.Fatalf("100 Emits took %v, past the %v outage: the test proves nothing", during, outage)
		}
		if slowest > writeTimeout+time.Second {
			t.Errorf("slowest Emit took %v; want about one write timeout (%v) at most, the rest held at once", slowest, writeTimeout)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := sp.Close(cctx); err != nil {
			t.Fatalf("Close after the outage = %v; want nil", err)
		}
		got := list(t, pg, events.Filter{Type: "outage"})
		if len(got) != 100 {
			t.Fatalf("%d events stored; want all 100", len(got))
		}
		for i, e := range got { // newest first
			if want := fmt.Sprint(99 - i); e.Subject != want {
				t.Fatalf("event %d from the newest is %s; want %s: the emit order is lost", i, e.Subject, want)
			}
			if i > 0 && e.ID >= got[i-1].ID {
				t.Fatalf("event %s was inserted after %s; want emit order", e.Subject, got[i-1].Subject)
			}
		}
		if st := sp.Stats(); st.Written != 100 || st.Dropped != 0 || st.Queued != 0 {
			t.Errorf("Stats = %+v; want 100 written", st)
		}
	})
}

// Close with the database still down gives up at its deadline and says
// how many events are lost.
func TestSpoolCloseDuringAnOutage(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		ctx := context.Background()
		db := pgtest.Open(t)
		proxied, proxy := throughProxy(t, db)
		pg := d.dial(t, proxied, events.WithWriteTimeout(200*time.Millisecond))
		if err := pg.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		sp := events.Spool(pg, events.WithSpoolBackoff(50*time.Millisecond, 200*time.Millisecond))
		proxy.Down()
		for i := range 5 {
			_ = sp.Emit(ctx, events.Event{Type: "lost", Subject: fmt.Sprint(i)})
		}
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		err := sp.Close(cctx)
		if err == nil || !strings.Contains(err.Error(), "5 events not written") {
			t.Errorf("Close during an outage = %v; want an error counting 5 events", err)
		}
		proxy.Up()
		if n := count(t, db, events.DefaultTable); n != 0 {
			t.Errorf("%d rows stored after Close gave up; want 0", n)
		}
	})
}

// lostAnswers is a sink whose writes commit and then fail, as a connection
// lost between the commit and its answer does: the first n calls.
type lostAnswers struct {
	events.BatchSink
	mu   sync.Mutex
	left int
}

func (l *lostAnswers) lose() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.left == 0 {
		return false
	}
	l.left--
	return true
}

func (l *lostAnswers) Emit(ctx context.Context, e events.Event) error {
	err := l.BatchSink.Emit(ctx, e)
	if err == nil && l.lose() {
		return errors.New("unexpected EOF")
	}
	return err
}

func (l *lostAnswers) EmitBatch(ctx context.Context, es []events.Event) error {
	err := l.BatchSink.EmitBatch(ctx, es)
	if err == nil && l.lose() {
		return errors.New("unexpected EOF")
	}
	return err
}

// A write that committed but whose answer was lost is written again by
// the Spooler, and stored once: every event it holds carries a key.
func TestSpoolStoresEachEventOnceWhenAnAnswerIsLost(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		ctx := context.Background()
		db := pgtest.Open(t)
		pg := d.sink(t, db)
		if err := pg.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		sink := &lostAnswers{BatchSink: pg, left: 2}
		sp := events.Spool(sink, events.WithSpoolBackoff(10*time.Millisecond, 50*time.Millisecond))
		if err := sp.Emit(ctx, events.Event{Type: "lost", Subject: "one"}); err != nil {
			t.Fatal(err)
		}
		batch := []events.Event{{Type: "lost", Subject: "two"}, {Type: "lost", Subject: "three"}}
		if err := sp.EmitBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := sp.Close(cctx); err != nil {
			t.Fatal(err)
		}
		if batch[0].Key != "" {
			t.Errorf("the caller's event was given a key: the Spooler must key its own copies")
		}
		if n := count(t, db, "structure_events"); n != 3 {
			t.Fatalf("%d events stored; want 3, each once", n)
		}
	})
}
