package soak

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/internal/faultproxy"
	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// The deployment under test.
const (
	apiReplicas     = 2
	sweeperReplicas = 3
	leaseName       = "soak-sweeper"
	// leaseTTL is short so that a replica cancelled while leading is
	// replaced within a fraction of a second; the sweeper renews a lease
	// that reports its TTL every third of it.
	leaseTTL = 1500 * time.Millisecond
	// attemptTimeout bounds every stop call; the latency fault holds a
	// call for latencyFault, well past it.
	attemptTimeout = 250 * time.Millisecond
	latencyFault   = 2 * attemptTimeout
	// sweeperAttemptTimeout bounds each of a sweeper's stop calls.
	sweeperAttemptTimeout = 8 * attemptTimeout
	// The row-gone guards, shortened so that leaks are reaped within the
	// run. The API inserts each row before launching its instance, so a
	// young instance is protected by its provisioning row, not by MinAge.
	minAge        = time.Second
	confirmPasses = 2
	// launchTimeout bounds a create's launch and record; a provisioning
	// row protects its instance for provisionTimeout after the launch,
	// which must outlast it, so only a create that died is reaped.
	launchTimeout    = 10 * time.Second
	provisionTimeout = launchTimeout + 2*time.Second
	// resourceTag is the tag the API writes and the sweepers read.
	resourceTag = workspaces.DefaultResourceTag
)

var owner = map[string]string{"leakless:owner": "soak"}

// storeOptions are the options of every store the soak opens. The re-drive
// grace keeps the sweepers off the instances a DELETE is stopping; the
// API's stops give up well within a second, so a second of grace lets the
// sweepers re-drive its failures within the run (the default, two minutes,
// would leave them all to the drain).
func storeOptions() []store.Option {
	return []store.Option{store.WithRedriveGrace(time.Second)}
}

// retryOptions are the stop retries of the API and of each sweeper pass.
func retryOptions() []teardown.Option {
	return []teardown.Option{
		teardown.WithMaxAttempts(3),
		teardown.WithBackoff(2*time.Millisecond, 20*time.Millisecond),
		teardown.WithAttemptTimeout(attemptTimeout),
	}
}

// world is the deployment under test, and what watches it.
type world struct {
	t     *testing.T
	db    *pgtest.DB // the test's own handle: setup and checks, never killed
	app   string     // application_name of every connection of the system under test
	fake  *ec2fake.Server
	chaos *chaos
	// notNull: the host table's instance column is NOT NULL DEFAULT ''
	// instead of NULL when empty (odd seeds).
	notNull bool

	lastEvents []events.Event // the ledger as the last read found it, for the figures

	// proxy stands between every connection of the system under test and
	// PostgreSQL, for the full outage; spools are the API's event spools.
	proxy    *faultproxy.Proxy
	spoolsMu sync.Mutex
	spools   []*events.Spooler
	// spoolStats are the spools' totals once closed, for the figures.
	spoolStats events.SpoolStats

	api      []*httptest.Server
	apiStats apiStats
	sinks    sinkStats // what the API and sweepers handed their event sinks
}

func newWorld(t *testing.T, seed uint64) *world {
	t.Helper()
	ctx := t.Context()
	w := &world{t: t, db: pgtest.Open(t), notNull: seed%2 == 1}
	w.app = "leakless-soak-" + w.db.Schema
	dbCfg, err := pgxpool.ParseConfig(w.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	if w.proxy, err = faultproxy.New(net.JoinHostPort(dbCfg.ConnConfig.Host, strconv.Itoa(int(dbCfg.ConnConfig.Port)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.proxy.Close() })
	// IAM allows terminating only instances with our owner tag, as a
	// least-privilege policy on aws:ResourceTag does.
	fakeOpts := []ec2fake.Option{ec2fake.WithSeed(seed), ec2fake.WithPropagationDelay(propagationDelay)}
	for k, v := range owner {
		fakeOpts = append(fakeOpts, ec2fake.WithTagCondition(k, v))
	}
	w.fake = ec2fake.NewInProcess(fakeOpts...)
	t.Cleanup(w.fake.Close)
	w.chaos = newChaos(w.fake, seed, latencyFault)

	if w.notNull {
		if _, err := w.db.Pool.Exec(ctx, notNullSchema()); err != nil {
			t.Fatal(err)
		}
	}
	rows := workspaces.NewPostgres(w.db.Pool)
	if err := rows.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := store.NewPgx(w.db.Pool, workspaces.Table, storeOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sink, err := events.NewPgx(w.db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Pool.Exec(ctx, auditSQL); err != nil {
		t.Fatal(err)
	}

	w.apiStats.stillHeld = w.stillHeld
	for range apiReplicas {
		w.api = append(w.api, w.newAPI())
	}
	return w
}

// stillHeld lists the removed rows of root's tree that still hold an
// instance, read on the test's own connection.
func (w *world) stillHeld(ctx context.Context, root string) []string {
	const q = `WITH RECURSIVE tree (id) AS (
	SELECT id FROM workspaces WHERE id = $1
  UNION
	SELECT c.id FROM workspaces c JOIN tree t ON c.parent_id = t.id)
SELECT h.id || ' (' || h.instance_id || ')' FROM tree JOIN workspaces h USING (id)
WHERE h.status = 'removed' AND coalesce(h.instance_id, '') <> ''`
	rows, err := w.db.Pool.Query(ctx, q, root)
	if err != nil {
		w.t.Errorf("read the tree of %s: %v", root, err)
		return nil
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.t.Errorf("read the tree of %s: %v", root, err)
	}
	return held
}

// notNullSchema is the workspaces table with an instance column that is
// never NULL, as many hosts declare it; created before the API's Migrate,
// whose CREATE TABLE IF NOT EXISTS then leaves it be.
func notNullSchema() string {
	const null, notNull = "instance_id text,", "instance_id text NOT NULL DEFAULT '',"
	if !strings.Contains(workspaces.Schema, null) {
		panic("soak: the workspaces schema no longer declares " + null)
	}
	return strings.Replace(workspaces.Schema, null, notNull, 1)
}

// auditSQL records, by the database's clock, when each row was marked
// removed, so that every termination can be checked against it, and when
// each row's instance was cleared, so that every clear can be checked
// against the termination it must follow. Status only ever moves forward,
// so a row is removed at most once.
const auditSQL = `
CREATE TABLE soak_removed (id text PRIMARY KEY, at timestamptz NOT NULL);
CREATE FUNCTION soak_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO soak_removed (id, at) VALUES (NEW.id, clock_timestamp()) ON CONFLICT DO NOTHING;
	RETURN NULL;
END $$;
CREATE TRIGGER soak_audit AFTER UPDATE OF status ON workspaces
	FOR EACH ROW WHEN (NEW.status = 'removed' AND OLD.status IS DISTINCT FROM 'removed')
	EXECUTE FUNCTION soak_audit();
CREATE TABLE soak_cleared (id text NOT NULL, instance_id text NOT NULL, at timestamptz NOT NULL);
CREATE FUNCTION soak_audit_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO soak_cleared (id, instance_id, at) VALUES (NEW.id, OLD.instance_id, clock_timestamp());
	RETURN NULL;
END $$;
CREATE TRIGGER soak_audit_clear AFTER UPDATE OF instance_id ON workspaces
	FOR EACH ROW WHEN (coalesce(OLD.instance_id, '') <> '' AND coalesce(NEW.instance_id, '') = '')
	EXECUTE FUNCTION soak_audit_clear();`

// pool opens a pool of the system under test: its connections carry w.app,
// which is how the chaos finds them to kill.
func (w *world) pool(maxConns int32) *pgxpool.Pool {
	w.t.Helper()
	cfg, err := pgxpool.ParseConfig(w.db.URL)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.RuntimeParams["application_name"] = w.app
	host, port, err := net.SplitHostPort(w.proxy.Addr())
	if err != nil {
		w.t.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Fallbacks = host, uint16(p), nil
	pool, err := pgxpool.NewWithConfig(w.t.Context(), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(pool.Close)
	return pool
}

// ec2Client is an SDK client on the fake, through the chaos, with the
// SDK's standard retries (used for launches only: the stopper switches
// them off per call). The retry quota is off, so that a long run of faults
// does not leave launches without retries for the rest of the soak.
func (w *world) ec2Client() *ec2.Client {
	client := &http.Client{Transport: w.chaos.transport(w.fake.Client().Transport)}
	return ec2.NewFromConfig(mototest.Config(w.fake.URL(), client), func(o *ec2.Options) {
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.RateLimiter = ratelimit.None
			o.MaxBackoff = 20 * time.Millisecond
		})
	})
}

// stopper is an EC2 stopper and inventory, of instances and of their
// dependents, through the chaos; its stops finish the instances'
// dependents. EC2's client-side budgets are off: the fake does not
// throttle by bucket (the chaos throttles at random instead), and at EC2's
// real 5 calls/s the soak would take an hour.
func (w *world) stopper(api *ec2.Client) *awsec2.Client {
	w.t.Helper()
	c, err := awsec2.New(api, awsec2.WithOwner(owner),
		awsec2.WithDependents(),
		awsec2.WithRateLimit(math.Inf(1), 1),
		awsec2.WithResourceRateLimit(math.Inf(1), awsec2.MaxBatchSize),
		awsec2.WithDescribeRateLimit(math.Inf(1), 1),
		awsec2.WithDeleteRateLimit(math.Inf(1), 1),
		awsec2.WithCancelRateLimit(math.Inf(1), 1))
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// newAPI starts one replica of the workspaces API, on its own pool and its
// own EC2 clients.
func (w *world) newAPI() *httptest.Server {
	w.t.Helper()
	pool := w.pool(12)
	st, err := store.NewPgx(pool, workspaces.Table, storeOptions()...)
	if err != nil {
		w.t.Fatal(err)
	}
	sink, err := events.NewPgx(pool)
	if err != nil {
		w.t.Fatal(err)
	}
	// Give-ups a database outage keeps from the table wait in the spool.
	spool := w.spool(sink)
	api := w.ec2Client()
	h, err := workspaces.New(workspaces.Config{
		Store:         recordingStore{st},
		Rows:          dyingRows{workspaces.NewPostgres(pool), w.chaos},
		Events:        countingSink{spool, &w.sinks},
		Ledger:        sink,
		EC2:           launcher{api, w.chaos},
		Stopper:       recordingStopper{w.stopper(api)},
		Owner:         owner,
		ResourceTag:   resourceTag,
		Retry:         retryOptions(),
		LaunchTimeout: launchTimeout,
		DeleteTimeout: 10 * time.Second,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	srv := httptest.NewServer(w.apiStats.wrap(h))
	w.t.Cleanup(srv.Close)
	srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	return srv
}

// ttlLease is a store lease that tells the sweeper its time to live, so
// that the sweeper renews it every third of it.
type ttlLease struct {
	*store.Lease
	ttl time.Duration
}

func (l ttlLease) TTL() time.Duration { return l.ttl }

// sweeperOptions are every sweeper's options but the leader.
func (w *world) sweeperOptions(inv *awsec2.Client, sink events.Sink) []sweeper.Option {
	return []sweeper.Option{
		sweeper.WithEvents(countingSink{sink, &w.sinks}),
		sweeper.WithInterval(100 * time.Millisecond),
		sweeper.WithPassTimeout(5 * time.Second),
		sweeper.WithBatchSize(200),
		// A sweeper's batch of 200 that meets a refusal or a NotFound is
		// settled in a chain of calls within one attempt: its attempts get
		// room for that chain, past the latency fault.
		sweeper.WithRetry(append(retryOptions(), teardown.WithAttemptTimeout(sweeperAttemptTimeout))...),
		// A short per-row backoff, so that rows failing retryably during
		// the run are soon due again. A permanent failure (a protected
		// instance) waits the maximum.
		sweeper.WithRowBackoff(50*time.Millisecond, 30*time.Second),
		sweeper.WithNotFoundSettle(notFoundSettle),
		sweeper.WithRowGone(inv, sweeper.RowGone{
			MinAge:           minAge,
			ConfirmPasses:    confirmPasses,
			ProvisionTimeout: provisionTimeout,
			// The breakers are for a production table; the soak ends with
			// an empty one, where every remaining instance is a candidate.
			MaxPerPass:  100000,
			MaxFraction: 1,
			ResourceTag: resourceTag,
		}),
		// The same guards for what instances leave behind: the soak ends
		// with every owned dependent free to reap being a candidate.
		sweeper.WithDependents(inv, sweeper.Dependents{
			MinAge:        minAge,
			ConfirmPasses: confirmPasses,
			MaxPerPass:    100000,
			MaxFraction:   1,
			ResourceTag:   resourceTag,
		}),
	}
}

// runSweepers runs the sweeper replicas until ctx ends, each one cancelled
// and restarted (as a new Sweeper with a new lease holder, as a restarted
// process would be) at random.
func (w *world) runSweepers(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for range sweeperReplicas {
		pool := w.pool(4)
		st, err := store.NewPgx(pool, workspaces.Table, storeOptions()...)
		if err != nil {
			w.t.Fatal(err)
		}
		pg, err := events.NewPgx(pool)
		if err != nil {
			w.t.Fatal(err)
		}
		sink := w.spool(pg)
		ec2c := w.stopper(w.ec2Client())
		wg.Go(func() {
			for ctx.Err() == nil {
				lease := ttlLease{st.Lease(leaseName, leaseTTL), leaseTTL}
				opts := append(w.sweeperOptions(ec2c, sink), sweeper.WithLeader(lease))
				sw, err := sweeper.New(st, ec2c, opts...)
				if err != nil {
					w.t.Error(err)
					return
				}
				run, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() {
					defer close(done)
					_ = sw.Run(run)
				}()
				up := time.Duration(300+w.chaos.float()*2700) * time.Millisecond
				if !sleep(ctx, up) {
					cancel()
					<-done
					return
				}
				cancel()
				<-done
				w.chaos.count(faultRestarts, 1)
				sleep(ctx, time.Duration(w.chaos.float()*300)*time.Millisecond)
			}
		})
	}
	return wg.Wait
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// spool returns a Spooler over sink that closeSpools drains.
func (w *world) spool(sink events.Sink) *events.Spooler {
	sp := events.Spool(sink)
	w.spoolsMu.Lock()
	w.spools = append(w.spools, sp)
	w.spoolsMu.Unlock()
	return sp
}

// closeSpools writes what the API's spools still hold and returns their
// totals.
func (w *world) closeSpools(ctx context.Context) (events.SpoolStats, error) {
	w.spoolsMu.Lock()
	defer w.spoolsMu.Unlock()
	var total events.SpoolStats
	var errs []error
	for _, sp := range w.spools {
		errs = append(errs, sp.Close(ctx))
		st := sp.Stats()
		total.Queued += st.Queued
		total.Written += st.Written
		total.Dropped += st.Dropped
	}
	return total, errors.Join(errs...)
}
