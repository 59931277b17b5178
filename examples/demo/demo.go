package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/examples/internal/backend"
	"github.com/leakless/leakless/internal/audit"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// Config is one run of the demo.
type Config struct {
	Workspaces   int           // launched, then deleted through the API
	Live         int           // launched and kept: the sweeper must leave them alone
	FailTrees    int           // deletes whose every stop attempt gets a 5xx (embedded EC2 only)
	ThrottleRate float64       // share of other TerminateInstances calls throttled (embedded EC2 only)
	Attempts     int           // stop attempts per instance, per DELETE and per sweeper pass
	MinAge       time.Duration // the sweeper's RowGone.MinAge
	RedriveGrace time.Duration // how long the sweeper leaves a row a DELETE is stopping to that DELETE
	Interval     time.Duration // between sweeper passes
	Timeout      time.Duration // give up waiting for the sweeper to drain after this long
	Concurrency  int           // API requests in flight at once
	Seed         uint64        // the embedded EC2's random source
	DatabaseURL  string        // empty: in memory
	EC2Endpoint  string        // empty: embedded fake EC2
	Verbose      bool
	Log          io.Writer // where the API and sweeper log, when not nil
}

// DefaultConfig is the run `go run ./examples/demo` makes.
func DefaultConfig() Config {
	return Config{
		Workspaces:   200,
		Live:         10,
		FailTrees:    4,
		ThrottleRate: 0.2,
		Attempts:     3,
		MinAge:       2 * time.Second,
		RedriveGrace: time.Second,
		Interval:     250 * time.Millisecond,
		Timeout:      45 * time.Second,
		Concurrency:  8,
		Seed:         1,
	}
}

func (c Config) validate() error {
	switch {
	case c.Workspaces < 1:
		return errors.New("-workspaces must be at least 1")
	case c.Live < 0 || c.FailTrees < 0:
		return errors.New("-live and -fail-trees must not be negative")
	case c.ThrottleRate < 0 || c.ThrottleRate >= 1:
		return errors.New("-throttle-rate must be in [0, 1)")
	case c.Attempts < 1:
		return errors.New("-attempts must be at least 1")
	case c.MinAge <= 0 || c.Interval <= 0 || c.Timeout <= 0:
		return errors.New("-min-age, -interval and -timeout must be positive")
	case c.RedriveGrace < 0:
		return errors.New("-redrive-grace must not be negative")
	case c.Concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	}
	return nil
}

// ownerKey is the demo's owner tag key; each run gets a value of its own,
// so runs against a shared emulator never see each other's instances.
const ownerKey = "leakless:owner"

// demo is one run in progress.
type demo struct {
	cfg   Config
	out   io.Writer
	log   *slog.Logger
	owner map[string]string
	db    *backend.Database
	cloud *backend.EC2
	api   *client
	start time.Time

	// The trouble, remembered for the census.
	protected, protectedRow string // the termination-protected instance and its row
	rowGone                 string // the instance whose row insert "crashed"
	inFlight                string // the instance whose row is still provisioning
}

// run tells the story and returns what happened to every instance. An
// error means the demo itself could not run; what it found is in Result.
func run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	d := &demo{cfg: cfg, out: out, start: time.Now(), log: slog.New(slog.DiscardHandler)}
	if cfg.Log != nil {
		d.log = slog.New(slog.NewTextHandler(cfg.Log, nil))
	}
	runID := randomHex(4)
	d.owner = map[string]string{ownerKey: "demo-" + runID}

	db, err := backend.OpenDatabase(ctx, backend.DatabaseOptions{
		URL: cfg.DatabaseURL, Schema: "leakless_demo_" + runID, DropSchema: true,
		Store: []store.Option{store.WithRedriveGrace(cfg.RedriveGrace)},
	})
	if err != nil {
		return Result{}, err
	}
	defer db.Close(context.WithoutCancel(ctx))
	d.db = db

	// Every stop also finishes what its instance owned (dependents.go).
	cloud, err := backend.OpenEC2(ctx, cfg.EC2Endpoint, d.owner,
		[]awsec2.Option{awsec2.WithDependents()}, ec2fake.WithSeed(cfg.Seed))
	if err != nil {
		return Result{}, err
	}
	defer cloud.Close()
	d.cloud = cloud

	h, err := workspaces.New(workspaces.Config{
		Store: db.Store, Rows: db.Rows, Events: db.Events, Ledger: db.Ledger,
		EC2: cloud.Client, Stopper: cloud.Stopper, Owner: d.owner,
		Retry:  d.retry(),
		Logger: d.log,
	})
	if err != nil {
		return Result{}, err
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	d.api = &client{base: srv.URL, http: srv.Client()}

	database := "in memory"
	if cfg.DatabaseURL != "" {
		database = "PostgreSQL (schema leakless_demo_" + runID + ")"
	}
	d.say("leakless demo: database %s, EC2 %s, API %s", database, cloud.Endpoint, srv.URL)
	d.say("owner tag %s=%s on every instance; the resource-id tag carries its workspace's id", ownerKey, d.owner[ownerKey])

	return d.story(ctx)
}

// retry is the stop policy of both the API and the sweeper: a few quick
// attempts, since the sweeper comes back for whatever is left.
func (d *demo) retry() []teardown.Option {
	return []teardown.Option{
		teardown.WithMaxAttempts(d.cfg.Attempts),
		teardown.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		teardown.WithAttemptTimeout(5 * time.Second),
	}
}

func (d *demo) story(ctx context.Context) (Result, error) {
	// 1. A crash between launch and insert: an instance with our tags and
	// the id of a row that was never written. It is launched first so that
	// it is past MinAge by the time the sweeper runs.
	d.step(1, "trouble before the API is even used")
	var err error
	d.rowGone, err = d.launchTagged(ctx, workspaces.NewID())
	if err != nil {
		return Result{}, err
	}
	d.say("   %s launched with our tags; its row insert \"crashed\", so no row will ever explain it", d.rowGone)
	if d.cloud.Fake != nil {
		if err := d.launchSpot(ctx); err != nil {
			return Result{}, err
		}
	}

	// 2. Launch.
	d.step(2, "launching %d workspaces to delete and %d to keep, through POST /workspaces", d.cfg.Workspaces, d.cfg.Live)
	trees := plan(d.cfg.Workspaces)
	if err := d.launchTrees(ctx, trees); err != nil {
		return Result{}, err
	}
	if err := d.launchLive(ctx); err != nil {
		return Result{}, err
	}
	if err := d.startInFlight(ctx); err != nil {
		return Result{}, err
	}

	// 3. Trouble.
	d.step(3, "EC2 trouble")
	protectedTree, unlucky := pickTrouble(trees, d.cfg.FailTrees)
	if err := d.protect(ctx, trees[protectedTree]); err != nil {
		return Result{}, err
	}
	if err := d.equip(ctx, trees, func(i int) bool { return i == protectedTree || unlucky[i] }); err != nil {
		return Result{}, err
	}
	if d.cloud.Fake != nil {
		d.say("   %d deletes will get a 5xx on every attempt (InternalError, ServiceUnavailable, Unavailable, a load balancer's bare 502)", len(unlucky))
		d.say("   %.0f%% of the other TerminateInstances calls answer RequestLimitExceeded; each throttle empties the client's", 100*d.cfg.ThrottleRate)
		d.say("   token buckets, as EC2 says the account's budget is spent, so the deletes then go at EC2's refill rate")
	} else {
		unlucky = nil
		d.say("   throttling and 5xx answers need the embedded EC2; on %s only the protected and row-gone instances misbehave", d.cloud.Endpoint)
	}

	// 4. Delete everything through the API.
	d.step(4, "deleting all %d trees through DELETE /workspaces/{id}", len(trees))
	failed, err := d.deleteAll(ctx, trees, unlucky)
	if err != nil {
		return Result{}, err
	}
	if err := d.showLedger(ctx); err != nil {
		return Result{}, err
	}
	c, err := d.census(ctx)
	if err != nil {
		return Result{}, err
	}
	d.say("   still running without a live workspace: %d instance(s)", len(c.leaked))

	// 5. The sweeper.
	d.step(5, "the sweeper (MinAge %v, a pass every %v, row-gone reaping on)", d.cfg.MinAge, d.cfg.Interval)
	passes, err := d.sweep(ctx)
	if err != nil {
		return Result{}, err
	}

	// 6. The outcome.
	c, err = d.census(ctx)
	if err != nil {
		return Result{}, err
	}
	res, err := d.result(ctx, c, failed, len(trees), passes)
	if err != nil {
		return Result{}, err
	}
	d.step(6, "outcome")
	res.print(d.out)

	// 7. What an operator sees.
	d.step(7, "the closing audit: leakless audit over this run's world")
	if res.Audit, err = d.audit(ctx); err != nil {
		return Result{}, err
	}
	if err := res.Audit.WriteTable(d.out); err != nil {
		return Result{}, err
	}
	return res, nil
}

// audit takes the census `leakless audit` takes, over the demo's own
// store, EC2 and ledger, with the sweeper's guards.
func (d *demo) audit(ctx context.Context) (*audit.Report, error) {
	st, ok := d.db.Store.(audit.Store)
	if !ok {
		return nil, fmt.Errorf("audit: the store %T has no Known or Stats", d.db.Store)
	}
	prices, err := audit.LoadPrices("")
	if err != nil {
		return nil, err
	}
	return audit.Take(ctx, audit.Config{
		Inventory: d.cloud.Stopper, Types: d.cloud.Client, Store: st, Ledger: d.db.Ledger,
		Prices: prices, Owner: d.owner, Table: workspaces.Table.Name, Dependents: d.cloud.Stopper,
		MinAge: d.cfg.MinAge, ResourceTag: workspaces.DefaultResourceTag,
	})
}

// sweep runs sweeper passes until the census finds nothing left to fix
// (the protected instance aside, once its failure is on record) or the
// timeout passes.
func (d *demo) sweep(ctx context.Context) (int, error) {
	sw, err := sweeper.New(d.db.Store, d.cloud.Stopper,
		sweeper.WithInterval(d.cfg.Interval),
		sweeper.WithPassTimeout(10*time.Second),
		sweeper.WithRowBackoff(d.cfg.Interval, 4*d.cfg.Interval),
		sweeper.WithRetry(d.retry()...),
		sweeper.WithEvents(events.BestEffort(d.db.Events, d.log)),
		sweeper.WithLogger(d.log),
		sweeper.WithRowGone(d.cloud.Stopper, sweeper.RowGone{MinAge: d.cfg.MinAge}),
		// Every owned dependent the demo leaves free is a leftover, so the
		// share breaker would always trip: it is off here.
		sweeper.WithDependents(d.cloud.Stopper, sweeper.Dependents{MinAge: d.cfg.MinAge, MaxFraction: 1}),
	)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(d.cfg.Timeout)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for pass := 1; ; pass++ {
		select {
		case <-ctx.Done():
			return pass - 1, ctx.Err()
		case <-timer.C:
		}
		rep, err := sw.SweepOnce(ctx)
		c, cerr := d.census(ctx)
		if cerr != nil {
			return pass, cerr
		}
		left, lerr := d.dependentsLeft(ctx)
		if lerr != nil {
			return pass, lerr
		}
		line := fmt.Sprintf("   pass %2d: re-drove %d, reaped %d, failed %d; row-gone seen %d, terminated %d; leaked now %d, dependents left %d",
			pass, rep.Pending, rep.Reaped, rep.Failed, rep.RowGoneSeen, rep.RowGoneTerminated, len(c.leaked), left)
		if rep.Aborted != "" {
			line += "; row-gone aborted: " + rep.Aborted
		}
		if err != nil {
			line += "; error: " + err.Error()
		}
		d.say("%s", line)
		onRecord, lerr := d.protectedOnRecord(ctx)
		if lerr != nil {
			return pass, lerr
		}
		if c.drained(d.protected) && onRecord && left == 0 {
			return pass, nil
		}
		if time.Now().After(deadline) {
			d.say("   gave up waiting after %v", d.cfg.Timeout)
			return pass, nil
		}
		timer.Reset(d.cfg.Interval)
	}
}

// launchTagged launches an instance the way the API does, tagged for
// resourceID, without the API recording it anywhere.
func (d *demo) launchTagged(ctx context.Context, resourceID string) (string, error) {
	tags := []types.Tag{{Key: aws.String(workspaces.DefaultResourceTag), Value: aws.String(resourceID)}}
	for k, v := range d.owner {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := d.cloud.Client.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId:      aws.String(workspaces.DefaultImageID),
		InstanceType: types.InstanceType(workspaces.DefaultInstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		ClientToken:  aws.String(resourceID),
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeInstance, Tags: tags,
		}},
	})
	if err != nil {
		return "", fmt.Errorf("launch: %w", err)
	}
	if len(out.Instances) != 1 {
		return "", fmt.Errorf("launch: RunInstances returned %d instances", len(out.Instances))
	}
	return aws.ToString(out.Instances[0].InstanceId), nil
}

// startInFlight writes a row and launches its instance but does not record
// it: a POST caught between launch and record. The sweeper must see the
// instance as still provisioning and leave it alone.
func (d *demo) startInFlight(ctx context.Context) error {
	ws, err := d.db.Rows.Insert(ctx, workspaces.NewID(), "")
	if err != nil {
		return err
	}
	d.inFlight, err = d.launchTagged(ctx, ws.ID)
	if err != nil {
		return err
	}
	d.say("   plus %s: launched for workspace %s, whose POST has not recorded it yet (still provisioning)", d.inFlight, short(ws.ID))
	return nil
}

// protect turns on termination protection for the deepest instance of tree.
func (d *demo) protect(ctx context.Context, t *tree) error {
	n := t.nodes[len(t.nodes)-1]
	_, err := d.cloud.Client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{
		InstanceId:            aws.String(n.instanceID),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("protect: %w", err)
	}
	d.protected, d.protectedRow = n.instanceID, n.id
	d.say("   %s (workspace %s, depth %d) has termination protection: no retry can stop it", n.instanceID, short(n.id), n.depth)
	return nil
}

// protectedOnRecord reports whether the sweeper has recorded the protected
// instance's failure as permanent.
func (d *demo) protectedOnRecord(ctx context.Context) (bool, error) {
	list, err := d.db.Ledger.List(ctx, events.Filter{Type: events.TypeReapFailed, Subject: d.protectedRow})
	if err != nil {
		return false, err
	}
	for _, e := range list {
		if p, _ := e.Payload["permanent"].(bool); p {
			return true, nil
		}
	}
	return false, nil
}

// step prints a numbered step's heading with the time since the start.
func (d *demo) step(n int, format string, args ...any) {
	d.say("\n%d. %s  [%.1fs]", n, fmt.Sprintf(format, args...), time.Since(d.start).Seconds())
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// short abbreviates a workspace id for display.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
