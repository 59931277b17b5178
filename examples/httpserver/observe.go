package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/leakless/leakless/store"
)

// healthTimeout bounds the database ping behind /healthz.
const healthTimeout = 2 * time.Second

// observed is the server's operational surface: /healthz, /metrics and
// the access log, around the API handler.
type observed struct {
	mp       *sdkmetric.MeterProvider
	metrics  http.Handler
	duration metric.Float64Histogram
	log      *slog.Logger
	pool     *pgxpool.Pool // nil in memory
}

// statser is a store that reports its backlog, as store.Postgres and
// store.Memory do.
type statser interface {
	Stats(ctx context.Context) (store.Stats, error)
}

// newObserved builds the metrics on a registry of the server's own (no
// global state, so two servers in one test binary do not collide). The
// store's backlog is read on each scrape when st reports it.
func newObserved(log *slog.Logger, pool *pgxpool.Pool, st store.Store) (*observed, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("metrics exporter: %w", err)
	}
	o := &observed{
		mp:      sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)),
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		log:     log,
		pool:    pool,
	}
	m := o.mp.Meter("github.com/leakless/leakless/examples/httpserver")
	o.duration, err = m.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("How long requests took, by method and status."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
	if err != nil {
		return nil, err
	}
	if s, ok := st.(statser); ok {
		if err := o.observeBacklog(m, s); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// observeBacklog exports the store's Stats, read at scrape time.
func (o *observed) observeBacklog(m metric.Meter, s statser) error {
	pending, err1 := m.Int64ObservableGauge("leakless.store.pending", metric.WithUnit("{row}"),
		metric.WithDescription("Removed rows still holding an instance, not acknowledged."))
	permanent, err2 := m.Int64ObservableGauge("leakless.store.permanent", metric.WithUnit("{row}"),
		metric.WithDescription("Pending rows whose latest failure was permanent."))
	oldest, err3 := m.Float64ObservableGauge("leakless.store.pending.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest pending row's first recorded attempt or grace."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	_, err := m.RegisterCallback(func(ctx context.Context, ob metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, healthTimeout)
		defer cancel()
		st, err := s.Stats(ctx)
		if err != nil {
			return err // the exporter logs it; the scrape goes on without these
		}
		ob.ObserveInt64(pending, int64(st.Pending))
		ob.ObserveInt64(permanent, int64(st.Permanent))
		ob.ObserveFloat64(oldest, st.OldestPending.Seconds())
		return nil
	}, pending, permanent, oldest)
	return err
}

// handler serves /healthz and /metrics, and api for everything else,
// logging every request and recording its duration.
func (o *observed) handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", o.healthz)
	mux.Handle("GET /metrics", o.metrics)
	mux.Handle("/", api)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(rec, r)
		d := time.Since(start)
		o.duration.Record(r.Context(), d.Seconds(), metric.WithAttributes(
			attribute.String("http.request.method", r.Method), attribute.Int("http.response.status_code", rec.status)))
		o.log.LogAttrs(r.Context(), slog.LevelInfo, "httpserver: request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", d))
	})
}

// healthz answers 200 while the database answers a ping (always, in
// memory), and 503 with the reason while it does not: a server that
// cannot record a removal cannot delete anything safely.
func (o *observed) healthz(w http.ResponseWriter, r *http.Request) {
	if o.pool != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := o.pool.Ping(ctx); err != nil {
			plain(w, http.StatusServiceUnavailable, "not ready: database unreachable: "+err.Error())
			return
		}
	}
	plain(w, http.StatusOK, "ok")
}

func (o *observed) shutdown(ctx context.Context) error { return o.mp.Shutdown(ctx) }

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}
