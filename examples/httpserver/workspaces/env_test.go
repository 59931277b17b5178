package workspaces_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// attempts is the stop attempts per instance the test API makes.
const attempts = 3

var owner = map[string]string{"leakless:owner": "workspaces-test"}

// env is the API on one backend, over a fake EC2.
type env struct {
	t       *testing.T
	fake    *ec2fake.Server
	ec2     *ec2.Client
	rows    workspaces.Rows
	store   store.Store
	ledger  workspaces.Ledger
	launch  *recorder
	flaky   *flakyRows // wraps rows for the API: scripted Record failures
	srv     *httptest.Server
	countDB func() int // rows in the table; nil in memory

	mu     sync.Mutex
	minted []string // every id the API generated
}

// backends runs f once on each store backend.
func backends(t *testing.T, f func(t *testing.T, e *env)) {
	for _, name := range []string{"memory", "postgres"} {
		t.Run(name, func(t *testing.T) { f(t, newEnv(t, name)) })
	}
}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, fake: ec2fake.New()}
	t.Cleanup(e.fake.Close)
	e.ec2 = ec2.NewFromConfig(mototest.Config(e.fake.URL(), e.fake.Client()))
	e.launch = &recorder{Launcher: e.ec2}
	stopper, err := awsec2.New(e.ec2, awsec2.WithOwner(owner))
	if err != nil {
		t.Fatal(err)
	}

	var (
		st   store.Store
		sink events.Sink
	)
	switch backend {
	case "memory":
		mem := workspaces.NewMemory()
		ev := workspaces.NewMemoryEvents()
		st, e.rows, sink, e.ledger = mem, mem, ev, ev
	case "postgres":
		db := pgtest.Open(t)
		rows := workspaces.NewPostgres(db.Pool)
		if err := rows.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		pst, err := store.NewPgx(db.Pool, workspaces.Table)
		if err != nil {
			t.Fatal(err)
		}
		if err := pst.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		ev, err := events.NewPgx(db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		st, e.rows, sink, e.ledger = pst, rows, ev, ev
		e.countDB = func() int {
			var n int
			if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM workspaces").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	e.store = st
	e.flaky = &flakyRows{Rows: e.rows}
	h, err := workspaces.New(workspaces.Config{
		Store: st, Rows: e.flaky, Events: sink, Ledger: e.ledger,
		EC2: e.launch, Stopper: stopper, Owner: owner,
		LaunchTimeout: 2 * time.Second, // a record that never succeeds gives up this soon
		NewID: func() string {
			id := workspaces.NewID()
			e.mu.Lock()
			e.minted = append(e.minted, id)
			e.mu.Unlock()
			return id
		},
		Retry: []teardown.Option{
			teardown.WithMaxAttempts(attempts),
			teardown.WithBackoff(time.Millisecond, 5*time.Millisecond),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// flakyRows fails the next n Record calls, as a database restart would.
type flakyRows struct {
	workspaces.Rows
	mu      sync.Mutex
	fail    int  // Record calls still to fail; negative: all
	lose    bool // the next Record commits, and its answer is lost
	records int
}

// loseRecord makes the next Record commit and then fail, as a connection
// dropped between the commit and its answer does.
func (f *flakyRows) loseRecord() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lose = true
}

func (f *flakyRows) failRecord(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = n
}

func (f *flakyRows) Record(ctx context.Context, id, instanceID string) (workspaces.Workspace, error) {
	f.mu.Lock()
	f.records++
	fail := f.fail != 0
	if f.fail > 0 {
		f.fail--
	}
	lose := f.lose
	f.lose = false
	f.mu.Unlock()
	if lose {
		if _, err := f.Rows.Record(ctx, id, instanceID); err != nil {
			return workspaces.Workspace{}, err
		}
		return workspaces.Workspace{}, errors.New("unexpected EOF")
	}
	if fail {
		return workspaces.Workspace{}, errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")
	}
	return f.Rows.Record(ctx, id, instanceID)
}

func (f *flakyRows) recordCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records
}

// recorder is a Launcher that remembers every RunInstances input.
type recorder struct {
	workspaces.Launcher
	mu    sync.Mutex
	ins   []*ec2.RunInstancesInput
	after func(in *ec2.RunInstancesInput) // if set, runs after each launch, before it returns
}

func (r *recorder) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	r.mu.Lock()
	r.ins = append(r.ins, in)
	after := r.after
	r.mu.Unlock()
	out, err := r.Launcher.RunInstances(ctx, in, optFns...)
	if after != nil {
		after(in)
	}
	return out, err
}

func (r *recorder) inputs() []*ec2.RunInstancesInput {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*ec2.RunInstancesInput(nil), r.ins...)
}

// do sends a request and returns the status and body.
func (e *env) do(method, path, body string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(raw) > 0 && resp.Header.Get("Content-Type") != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, raw
}

// create POSTs a workspace and returns it, failing the test on anything but 201.
func (e *env) create(parentID string) workspaces.Workspace {
	e.t.Helper()
	body := ""
	if parentID != "" {
		body = `{"parent_id":"` + parentID + `"}`
	}
	status, raw := e.do(http.MethodPost, "/workspaces", body)
	if status != http.StatusCreated {
		e.t.Fatalf("POST /workspaces: %d %s", status, raw)
	}
	var ws workspaces.Workspace
	decode(e.t, raw, &ws)
	return ws
}

// get reads a workspace through the API.
func (e *env) get(id string) workspaces.Workspace {
	e.t.Helper()
	status, raw := e.do(http.MethodGet, "/workspaces/"+id, "")
	if status != http.StatusOK {
		e.t.Fatalf("GET /workspaces/%s: %d %s", id, status, raw)
	}
	var ws workspaces.Workspace
	decode(e.t, raw, &ws)
	return ws
}

// events lists the ledger through the API.
func (e *env) events(query string) []workspaces.EventJSON {
	e.t.Helper()
	status, raw := e.do(http.MethodGet, "/events"+query, "")
	if status != http.StatusOK {
		e.t.Fatalf("GET /events%s: %d %s", query, status, raw)
	}
	var list workspaces.EventList
	decode(e.t, raw, &list)
	return list.Events
}

// state is the fake EC2's state of an instance.
func (e *env) state(id string) string {
	e.t.Helper()
	inst, ok := e.fake.Instance(id)
	if !ok {
		e.t.Fatalf("instance %s does not exist", id)
	}
	return inst.State
}

// setProtection turns termination protection on or off, as an operator
// would, through the SDK.
func (e *env) setProtection(id string, on bool) {
	e.t.Helper()
	_, err := e.ec2.ModifyInstanceAttribute(context.Background(), &ec2.ModifyInstanceAttributeInput{
		InstanceId:            aws.String(id),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(on)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// snapshot is what a rejected request must leave unchanged.
type snapshot struct {
	minted, launches, rows int
	events                 int
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	e.mu.Lock()
	s := snapshot{minted: len(e.minted), launches: len(e.launch.inputs()), rows: -1}
	e.mu.Unlock()
	if e.countDB != nil {
		s.rows = e.countDB()
	}
	list, err := e.ledger.List(context.Background(), events.Filter{})
	if err != nil {
		e.t.Fatal(err)
	}
	s.events = len(list)
	return s
}

// assertNothingWritten checks that no row, instance or event appeared
// since before: every id minted since is absent from the table.
func (e *env) assertNothingWritten(before snapshot) {
	e.t.Helper()
	after := e.snapshot()
	if after.launches != before.launches {
		e.t.Errorf("RunInstances calls: %d, want %d", after.launches, before.launches)
	}
	if after.rows != before.rows {
		e.t.Errorf("rows in the table: %d, want %d", after.rows, before.rows)
	}
	if after.events != before.events {
		e.t.Errorf("events: %d, want %d", after.events, before.events)
	}
	e.mu.Lock()
	minted := append([]string(nil), e.minted[before.minted:]...)
	e.mu.Unlock()
	for _, id := range minted {
		if _, err := e.rows.Get(context.Background(), id); !errors.Is(err, workspaces.ErrNotFound) {
			e.t.Errorf("row %s was written (Get: %v)", id, err)
		}
	}
}

func decode(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}
