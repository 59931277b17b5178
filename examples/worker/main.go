package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/internal/backend"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown/awsec2"
)

// LeaseName is the leader lease the worker replicas share; with -regions,
// the name of their group of shard leases, one per region.
const LeaseName = "leakless-sweeper"

func main() {
	if err := runUntilSignal(os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// runUntilSignal is run until SIGINT or SIGTERM.
func runUntilSignal(args []string, getenv func(string) string, stderr io.Writer, ready func(addr string)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, getenv, stderr, ready)
}

// config is the parsed command line.
type config struct {
	addr        string
	rowGone     bool
	dryRun      bool
	minAge      time.Duration
	interval    time.Duration
	passTimeout time.Duration
	leaseTTL    time.Duration
	regions     []string // one shard each; none: one sweeper over every row
	backend.Flags
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var errs []error
	envBool := func(key string) bool {
		v := getenv(key)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return b
	}
	envDuration := func(key string, def time.Duration) time.Duration {
		v := getenv(key)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return d
	}
	fs.StringVar(&c.addr, "addr", backend.Env(getenv, "ADDR", "127.0.0.1:9090"), "listen address for /metrics and /healthz (env ADDR)")
	fs.BoolVar(&c.rowGone, "row-gone", envBool("ROW_GONE"), "also terminate owned instances that no workspace explains (env ROW_GONE)")
	fs.BoolVar(&c.dryRun, "dry-run", envBool("DRY_RUN"), "touch nothing: stop, terminate and write nothing; events say what each pass would do (env DRY_RUN)")
	fs.DurationVar(&c.minAge, "min-age", envDuration("MIN_AGE", sweeper.DefaultMinAge),
		"with -row-gone: never terminate a younger instance; must exceed the API's longest launch-to-record time (env MIN_AGE)")
	fs.DurationVar(&c.interval, "interval", envDuration("INTERVAL", sweeper.DefaultInterval), "time between passes (env INTERVAL)")
	fs.DurationVar(&c.passTimeout, "pass-timeout", envDuration("PASS_TIMEOUT", sweeper.DefaultPassTimeout), "bound on one pass, and on shutdown (env PASS_TIMEOUT)")
	fs.DurationVar(&c.leaseTTL, "lease-ttl", envDuration("LEASE_TTL", 30*time.Second), "leader lease time to live, on PostgreSQL (env LEASE_TTL)")
	regions := backend.Env(getenv, "REGIONS", "")
	fs.StringVar(&regions, "regions", regions,
		"comma-separated regions, one shard each: a sweeper per region over the rows whose region column names it, spread across the replicas (env REGIONS); empty: one sweeper over every row")
	c.Flags.Register(fs, getenv)
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if regions != "" {
		for r := range strings.SplitSeq(regions, ",") {
			c.regions = append(c.regions, strings.TrimSpace(r))
		}
	}
	return c, c.validate()
}

// minLeaseTTL is the shortest lease the worker accepts: it renews every
// third of the TTL, and a renewal is a database round trip that must fit.
const minLeaseTTL = 3 * time.Second

// validate refuses settings that would start a worker that never sweeps,
// or sweeps with a guard silently replaced by its default.
func (c config) validate() error {
	var errs []error
	if c.leaseTTL < minLeaseTTL {
		errs = append(errs, fmt.Errorf("-lease-ttl %v: must be at least %v (the lease is renewed every third of it)", c.leaseTTL, minLeaseTTL))
	}
	if c.interval <= 0 {
		errs = append(errs, fmt.Errorf("-interval %v: must be positive", c.interval))
	}
	if c.passTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-pass-timeout %v: must be positive", c.passTimeout))
	}
	if c.minAge <= 0 {
		errs = append(errs, fmt.Errorf("-min-age %v: must be positive (it must exceed the API's longest launch-to-record time)", c.minAge))
	}
	for i, r := range c.regions {
		if r == "" || slices.Contains(c.regions[:i], r) {
			errs = append(errs, fmt.Errorf("-regions %q: each region must be named once, none empty", strings.Join(c.regions, ",")))
			break
		}
	}
	return errors.Join(errs...)
}

// run sweeps until ctx ends. ready, if not nil, is called with the
// metrics address once it listens.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(addr string)) error {
	c, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	owner, db, cloud, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	defer cloud.Close()
	var regions *backend.Regions
	if len(c.regions) > 0 {
		if regions, err = backend.OpenRegions(ctx, c.EC2Endpoint, c.regions, owner, nil); err != nil {
			return err
		}
		defer regions.Close()
	}
	return serve(ctx, c, db, cloud, regions, log, ready)
}

// serve runs the sweepers and the metrics endpoint on open backends: one
// sweeper over every row with cloud, or, given regions, one per region,
// each over its region's rows with its region's client and shard lease.
func serve(ctx context.Context, c config, db *backend.Database, cloud *backend.EC2, regions *backend.Regions, log *slog.Logger, onReady func(addr string)) error {
	// A registry of our own: nothing global, so two workers in one test
	// binary do not collide.
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("metrics exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.WithoutCancel(ctx))

	var (
		sweepers []*sweeper.Sweeper
		leases   []*watchedLeader
		shards   *store.Shards // with regions on PostgreSQL
	)
	if regions == nil {
		lease := &watchedLeader{started: time.Now()}
		if db.Postgres != nil {
			lease.Leader, lease.ttl = db.Postgres.Lease(LeaseName, c.leaseTTL), c.leaseTTL
		}
		sw, err := newSweeper(c, db.Store, cloud.Stopper, lease, mp, db, log)
		if err != nil {
			return err
		}
		sweepers, leases = append(sweepers, sw), append(leases, lease)
	} else {
		if db.Postgres != nil {
			shards = db.Postgres.Shards(LeaseName, regions.Router.Locations(), c.leaseTTL)
		}
		for _, region := range regions.Router.Locations() {
			st, err := scoped(db, region)
			if err != nil {
				return err
			}
			stopper, err := regions.Router.At(region)
			if err != nil {
				return err
			}
			lease := &watchedLeader{started: time.Now()}
			if shards != nil {
				lease.Leader, lease.ttl = shards.Lease(region), c.leaseTTL
			}
			sw, err := newSweeper(c, st, stopper, lease, mp, db, log.With("region", region),
				sweeper.WithMetricAttributes(attribute.String("region", region)))
			if err != nil {
				return err
			}
			sweepers, leases = append(sweepers, sw), append(leases, lease)
		}
	}
	if db.Postgres == nil {
		log.Warn("worker: no database: sweeping the in-memory table without a leader lease")
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// /livez: the process runs. /readyz (and /healthz): it can do its
	// work: the database answers and the lease could be read within a TTL.
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok") })
	ready := func(w http.ResponseWriter, r *http.Request) {
		if err := readiness(r.Context(), db, leases...); err != nil {
			plain(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		plain(w, http.StatusOK, "ok")
	}
	mux.HandleFunc("GET /readyz", ready)
	mux.HandleFunc("GET /healthz", ready)
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var endpoint string
	if regions != nil {
		endpoint = regions.Endpoint
	} else {
		endpoint = cloud.Endpoint
	}
	log.Info("worker: sweeping", "addr", ln.Addr().String(), "ec2", endpoint, "owner", c.Owner,
		"database", db.Postgres != nil, "row_gone", c.rowGone, "min_age", c.minAge, "dry_run", c.dryRun,
		"interval", c.interval, "pass_timeout", c.passTimeout, "lease_ttl", c.leaseTTL, "regions", strings.Join(c.regions, ","))
	if onReady != nil {
		onReady(ln.Addr().String())
	}

	// RunAll returns once ctx ends and every sweeper's pass in flight has
	// recorded its results (at most the pass timeout), with its lease
	// released; leaving the group then hands the regions to the other
	// replicas at their next renewal.
	runErr := sweeper.RunAll(ctx, sweepers...)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if shards != nil {
		runErr = errors.Join(runErr, shards.Leave(sctx))
	}
	err = errors.Join(runErr, srv.Shutdown(sctx))
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	log.Info("worker: stopped")
	return err
}

// watchedLeader is the sweeper's lease, remembering when the lease table
// last answered, for /readyz.
type watchedLeader struct {
	sweeper.Leader // nil without a database
	ttl            time.Duration
	started        time.Time

	mu       sync.Mutex
	answered time.Time // the last Lead that returned without an error
}

func (l *watchedLeader) Lead(ctx context.Context) (bool, error) {
	ok, err := l.Leader.Lead(ctx)
	if err == nil {
		l.mu.Lock()
		l.answered = time.Now()
		l.mu.Unlock()
	}
	return ok, err
}

// TTL lets the sweeper renew every third of it.
func (l *watchedLeader) TTL() time.Duration { return l.ttl }

// stale reports whether the lease has gone unread for longer than a TTL.
func (l *watchedLeader) stale() bool {
	if l.Leader == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.answered
	if last.IsZero() {
		last = l.started
	}
	return time.Since(last) > l.ttl
}

// readinessTimeout bounds the database check behind /readyz.
const readinessTimeout = 2 * time.Second

// readiness is nil when the worker can sweep: its database answers and
// every lease has been readable within the last TTL.
func readiness(ctx context.Context, db *backend.Database, leases ...*watchedLeader) error {
	if db.Pool != nil {
		ctx, cancel := context.WithTimeout(ctx, readinessTimeout)
		defer cancel()
		if err := db.Pool.Ping(ctx); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
	}
	for _, lease := range leases {
		if lease.stale() {
			return fmt.Errorf("the lease could not be read for longer than its TTL (%v)", lease.ttl)
		}
	}
	return nil
}

// newSweeper is one sweeper over st, stopping with stopper, led by lease
// when it has a Leader, with more options after the worker's own.
func newSweeper(c config, st store.Store, stopper *awsec2.Client, lease *watchedLeader, mp *sdkmetric.MeterProvider, db *backend.Database, log *slog.Logger, more ...sweeper.Option) (*sweeper.Sweeper, error) {
	opts := []sweeper.Option{
		sweeper.WithInterval(c.interval),
		sweeper.WithPassTimeout(c.passTimeout),
		sweeper.WithEvents(events.BestEffort(db.Events, log)),
		sweeper.WithLogger(log),
		sweeper.WithMeterProvider(mp),
	}
	if lease.Leader != nil {
		opts = append(opts, sweeper.WithLeader(lease))
	}
	if c.dryRun {
		opts = append(opts, sweeper.WithDryRun())
	}
	// The inventory lets every pass reap what a removed row left running
	// unrecorded; -row-gone widens that to every instance no row explains.
	opts = append(opts, sweeper.WithInventory(stopper))
	if c.rowGone {
		opts = append(opts, sweeper.WithRowGone(stopper, sweeper.RowGone{MinAge: c.minAge}))
	}
	return sweeper.New(st, stopper, append(opts, more...)...)
}

// scoped is db's store seeing only region's rows.
func scoped(db *backend.Database, region string) (store.Store, error) {
	if db.Postgres != nil {
		return db.Postgres.In(region)
	}
	mem, ok := db.Store.(interface{ In(string) *store.Memory })
	if !ok {
		return nil, fmt.Errorf("worker: the in-memory store %T cannot be scoped to a region", db.Store)
	}
	return mem.In(region), nil
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}
