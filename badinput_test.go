package leakless_test

// The bad-input matrix: every public constructor and entry point, handed
// empty, malformed and duplicate ids, nil dependencies, zero and negative
// options, hostile identifiers, payloads that do not marshal, a cancelled
// context, a database that is down or silent, and an EC2 endpoint that
// answers garbage or nothing at all. Each case must end in a clear error
// (the package's sentinel where it has one, and a message naming the
// package) or a documented no-op; never a panic, and never a partial write.

import (
	"context"
	"database/sql"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"go.opentelemetry.io/otel/metric"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/internal/pgtest"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// Hostile identifiers and ids, shared by every table below.
var (
	long64     = strings.Repeat("a", 64)         // one byte past PostgreSQL's identifier limit
	long63     = strings.Repeat("b", 63)         // exactly at it
	injection  = `x"; DROP TABLE workspaces; --` // quote, semicolon, comment
	quoteSemi  = `it's; gone`                    // a value that must travel as a literal
	liveID     = "i-0123456789abcdef0"           // a well-formed instance id
	otherID    = "i-0fedcba987654321f"           // another
	unknownID  = "i-00000000000000000"           // well-formed, never launched
	badIDs     = []string{"", "i-123", "I-0123ABCD", "i-0123abcd'; DROP TABLE x; --", "i-0123abcd;i-0123abce", "i-" + strings.Repeat("a", 62), "i-0123abcd\x00", " i-0123abcd", "i-0123abc\xff"}
	ownerTags  = map[string]string{"leakless:owner": "badinput"}
	discardLog = slog.New(slog.DiscardHandler)
)

// call runs f and fails the test, with the stack, if it panics: bad input
// must be an error, never a crash.
func call(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panicked: %v\n%s", r, debug.Stack())
		}
	}()
	f()
}

// outcome checks the error a bad input produced.
type outcome func(t *testing.T, err error)

// fails wants an error from pkg ("pkg: ..."), wrapping every target.
func fails(pkg string, targets ...error) outcome {
	return func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("got no error, want a %s error", pkg)
		}
		if !strings.HasPrefix(err.Error(), pkg+": ") {
			t.Errorf("error %q does not name its package %s", err, pkg)
		}
		for _, target := range targets {
			if !errors.Is(err, target) {
				t.Errorf("error %q does not wrap %q", err, target)
			}
		}
	}
}

// permanent is fails plus teardown's mark that retrying cannot help.
func permanent(pkg string, targets ...error) outcome {
	want := fails(pkg, targets...)
	return func(t *testing.T, err error) {
		t.Helper()
		want(t, err)
		if !teardown.IsPermanent(err) {
			t.Errorf("error %q is not marked permanent", err)
		}
	}
}

// retryable is fails for an error a later attempt may get past: neither
// permanent nor "gone", which would count as success.
func retryable(pkg string, targets ...error) outcome {
	want := fails(pkg, targets...)
	return func(t *testing.T, err error) {
		t.Helper()
		want(t, err)
		if teardown.IsPermanent(err) || errors.Is(err, teardown.ErrGone) {
			t.Errorf("error %q is classified %s, want retryable", err, kind(err))
		}
	}
}

// gaveUp wants StopWithRetry's *RetryError with the given cause and calls.
func gaveUp(cause error, attempts int) outcome {
	return func(t *testing.T, err error) {
		t.Helper()
		fails("teardown", cause)(t, err)
		var re *teardown.RetryError
		if !errors.As(err, &re) {
			t.Fatalf("error %q is not a *teardown.RetryError", err)
		}
		if re.Attempts != attempts {
			t.Errorf("RetryError.Attempts = %d, want %d", re.Attempts, attempts)
		}
	}
}

// noError is a documented no-op or an accepted input.
func noError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
}

// kind names how teardown treats err.
func kind(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, teardown.ErrGone):
		return "gone"
	case teardown.IsPermanent(err):
		return "permanent"
	default:
		return "retryable"
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func expired() context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	cancel()
	return ctx
}

// within fails the test if f takes longer than d: a hung dependency must
// cost the caller its deadline, not its goroutine.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	start := time.Now()
	f()
	if took := time.Since(start); took > d {
		t.Errorf("took %v, want at most %v", took.Round(time.Millisecond), d)
	}
}

// --- databases that are down or silent ---

// deadURL is a PostgreSQL URL for a 127.0.0.1 port nothing listens on.
func deadURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "postgres://postgres@" + addr + "/test?sslmode=disable"
}

// silentURL is a PostgreSQL URL for a server that accepts connections and
// never says a word: one that is unreachable in every way but the socket.
func silentURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "postgres://postgres@" + l.Addr().String() + "/test?sslmode=disable"
}

// downPool is a pgx pool on rawURL; it connects lazily, so it is built
// whatever the server's state.
func downPool(t testing.TB, rawURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// downSQL is a database/sql handle (pgx's driver) on rawURL.
func downSQL(t testing.TB, rawURL string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// dbState renders every row of the named tables (those that exist), so a
// case can show it wrote nothing.
func dbState(t testing.TB, pool *pgxpool.Pool, tables ...string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, table := range tables {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			t.Fatalf("dbState: %v", err)
		}
		if !exists {
			fmt.Fprintf(&b, "%s: absent\n", table)
			continue
		}
		var rows *string
		q := `SELECT string_agg(t::text, E'\n' ORDER BY t::text) FROM ` + table + ` t`
		if err := pool.QueryRow(ctx, q).Scan(&rows); err != nil {
			t.Fatalf("dbState %s: %v", table, err)
		}
		fmt.Fprintf(&b, "%s:\n%s\n", table, deref(rows))
	}
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// --- EC2 endpoints ---

// ec2Stub is an EC2 endpoint that answers each action as told: garbage, an
// error envelope, or nothing at all until the caller gives up.
type ec2Stub struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	replies map[string]stubReply // by Action; "" answers every other action
	calls   map[string]int
}

type stubReply struct {
	status int
	body   string
	hang   bool // answer nothing until the request's context ends
}

func newEC2Stub(t testing.TB) *ec2Stub {
	t.Helper()
	s := &ec2Stub{
		replies: map[string]stubReply{"": {status: 500, body: "no answer configured"}},
		calls:   map[string]int{},
	}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		action := r.Form.Get("Action")
		s.mu.Lock()
		s.calls[action]++
		rep, ok := s.replies[action]
		if !ok {
			rep = s.replies[""]
		}
		s.mu.Unlock()
		if rep.hang {
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(func() {
		close(done)
		srv.Close()
	})
	s.url, s.client = srv.URL, srv.Client()
	return s
}

func (s *ec2Stub) answer(action string, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies[action] = stubReply{status: status, body: body}
}

func (s *ec2Stub) hang(action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies[action] = stubReply{hang: true}
}

func (s *ec2Stub) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	s.replies = map[string]stubReply{"": {status: 500, body: "no answer configured"}}
}

func (s *ec2Stub) callsOf(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// api is the real SDK client for the stub.
func (s *ec2Stub) api() *ec2.Client {
	return ec2.NewFromConfig(mototest.Config(s.url, s.client))
}

// ec2Error is EC2's error envelope for code and message.
func ec2Error(code, message string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>`)
	_ = xml.EscapeText(&b, []byte(code))
	b.WriteString(`</Code><Message>`)
	_ = xml.EscapeText(&b, []byte(message))
	b.WriteString(`</Message></Error></Errors><RequestID>9b3a1c2e-0000-4000-8000-000000000000</RequestID></Response>`)
	return b.String()
}

const (
	ec2xmlns = `xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"`
	// describeEmpty is EC2's real answer when no instance matches.
	describeEmpty = `<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse ` + ec2xmlns + `><requestId>r-1</requestId><reservationSet/></DescribeInstancesResponse>`
	// terminateNamesNone is a well-formed TerminateInstances answer that
	// terminated nothing it was asked to.
	terminateNamesNone = `<?xml version="1.0" encoding="UTF-8"?><TerminateInstancesResponse ` + ec2xmlns + `><requestId>r-1</requestId><instancesSet/></TerminateInstancesResponse>`
)

func notFoundBody(ids ...string) string {
	return ec2Error("InvalidInstanceID.NotFound", "The instance IDs '"+strings.Join(ids, ", ")+"' do not exist")
}

// terminated is EC2's answer to a TerminateInstances call that worked.
func terminated(ids ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><TerminateInstancesResponse ` + ec2xmlns + `><requestId>r-1</requestId><instancesSet>`)
	for _, id := range ids {
		b.WriteString(`<item><instanceId>` + id + `</instanceId><currentState><code>32</code><name>shutting-down</name></currentState><previousState><code>16</code><name>running</name></previousState></item>`)
	}
	b.WriteString(`</instancesSet></TerminateInstancesResponse>`)
	return b.String()
}

// fakeEC2 is a listening ec2fake and an awsec2 client for it.
func fakeEC2(t testing.TB, opts ...awsec2.Option) (*ec2fake.Server, *awsec2.Client) {
	t.Helper()
	srv := ec2fake.New()
	t.Cleanup(srv.Close)
	c, err := awsec2.New(ec2.NewFromConfig(mototest.Config(srv.URL(), srv.Client())), append([]awsec2.Option{awsec2.WithOwner(ownerTags)}, opts...)...)
	if err != nil {
		t.Fatalf("awsec2.New: %v", err)
	}
	return srv, c
}

// =====================================================================
// teardown
// =====================================================================

// countingStopper records every id it is asked to stop.
type countingStopper struct {
	mu  sync.Mutex
	ids []string
	err error
}

func (s *countingStopper) Stop(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
	return s.err
}

func (s *countingStopper) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

func TestBadInputStopWithRetry(t *testing.T) {
	hung := teardown.StopperFunc(func(ctx context.Context, _ string) error {
		<-ctx.Done()
		return ctx.Err()
	})
	cases := []struct {
		name    string
		ctx     context.Context
		stopper teardown.Stopper // nil: a fresh countingStopper
		id      string
		opts    []teardown.Option
		want    outcome
		calls   int // calls the countingStopper must see
	}{
		{name: "nil stopper", stopper: nilStopper{}, id: liveID, want: permanent("teardown")},
		{name: "nil StopperFunc", stopper: teardown.StopperFunc(nil), id: liveID, want: permanent("teardown")},
		{name: "empty id", id: "", want: permanent("teardown")},
		{name: "max attempts 0", id: liveID, opts: opts(teardown.WithMaxAttempts(0)), want: fails("teardown", teardown.ErrConfig)},
		{name: "max attempts -1", id: liveID, opts: opts(teardown.WithMaxAttempts(-1)), want: fails("teardown", teardown.ErrConfig)},
		{name: "negative backoff base", id: liveID, opts: opts(teardown.WithBackoff(-time.Second, time.Second)), want: fails("teardown", teardown.ErrConfig)},
		{name: "negative backoff max", id: liveID, opts: opts(teardown.WithBackoff(0, -1)), want: fails("teardown", teardown.ErrConfig)},
		{name: "backoff max under base", id: liveID, opts: opts(teardown.WithBackoff(2*time.Second, time.Second)), want: fails("teardown", teardown.ErrConfig)},
		{name: "jitter -1", id: liveID, opts: opts(teardown.WithJitter(-1)), want: fails("teardown", teardown.ErrConfig)},
		{name: "jitter past the last", id: liveID, opts: opts(teardown.WithJitter(teardown.DecorrelatedJitter + 1)), want: fails("teardown", teardown.ErrConfig)},
		{name: "negative attempt timeout", id: liveID, opts: opts(teardown.WithAttemptTimeout(-time.Millisecond)), want: fails("teardown", teardown.ErrConfig)},
		{name: "concurrency 0", id: liveID, opts: opts(teardown.WithConcurrency(0)), want: fails("teardown", teardown.ErrConfig)},
		{name: "batch size -1", id: liveID, opts: opts(teardown.WithBatchSize(-1)), want: fails("teardown", teardown.ErrConfig)},
		{name: "first bad option wins over a later good one", id: liveID, opts: opts(teardown.WithMaxAttempts(0), teardown.WithMaxAttempts(3)), want: fails("teardown", teardown.ErrConfig)},
		{name: "nil option is skipped", id: liveID, opts: []teardown.Option{nil}, want: noError, calls: 1},
		{name: "hostile id is the stopper's business", id: injection + long64, want: noError, calls: 1},
		{name: "cancelled context", ctx: cancelled(), id: liveID, want: gaveUp(context.Canceled, 0)},
		{name: "expired deadline", ctx: expired(), id: liveID, want: gaveUp(context.DeadlineExceeded, 0)},
		{name: "hung stopper, attempt timeout", stopper: hung, id: liveID,
			opts: opts(teardown.WithAttemptTimeout(20*time.Millisecond), teardown.WithMaxAttempts(2), teardown.WithBackoff(0, 0)),
			want: allOf(gaveUp(teardown.ErrExhausted, 2), fails("teardown", context.DeadlineExceeded))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := c.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			counter := &countingStopper{}
			s := c.stopper
			if s == nil {
				s = counter
			}
			if _, ok := s.(nilStopper); ok {
				s = nil
			}
			hooks := 0
			o := append(slices.Clone(c.opts), teardown.WithOnExhausted(func(context.Context, *teardown.RetryError) { hooks++ }))
			var err error
			call(t, func() { err = teardown.StopWithRetry(ctx, s, c.id, o...) })
			c.want(t, err)
			if got := counter.seen(); len(got) != c.calls || (c.calls > 0 && got[0] != c.id) {
				t.Errorf("stopper saw %q, want %d call(s) with %q", got, c.calls, c.id)
			}
			var re *teardown.RetryError
			if wantHook := errors.As(err, &re); (hooks == 1) != wantHook || hooks > 1 {
				t.Errorf("OnExhausted called %d times for %v", hooks, err)
			}
		})
	}
}

// nilStopper makes a case's stopper a nil interface value.
type nilStopper struct{}

func (nilStopper) Stop(context.Context, string) error { panic("unreachable") }

func opts(o ...teardown.Option) []teardown.Option { return o }

func allOf(checks ...outcome) outcome {
	return func(t *testing.T, err error) {
		t.Helper()
		for _, c := range checks {
			c(t, err)
		}
	}
}

// batchFunc is a BatchStopper whose StopBatch answer is f's.
type batchFunc func(ids []string) map[string]error

func (f batchFunc) Stop(ctx context.Context, id string) error { return f([]string{id})[id] }
func (f batchFunc) StopBatch(_ context.Context, ids []string) map[string]error {
	return f(ids)
}

func TestBadInputStopAll(t *testing.T) {
	fast := opts(teardown.WithMaxAttempts(2), teardown.WithBackoff(0, 0))
	cases := []struct {
		name    string
		ctx     context.Context
		stopper teardown.Stopper // nil: a fresh countingStopper
		ids     []string
		opts    []teardown.Option
		want    map[string]outcome // one entry per distinct id, exactly
		calls   int
	}{
		{name: "nil ids", ids: nil, want: map[string]outcome{}},
		{name: "empty ids", ids: []string{}, want: map[string]outcome{}},
		{name: "empty id", ids: []string{""}, want: map[string]outcome{"": permanent("teardown")}},
		{name: "duplicates are stopped once", ids: []string{liveID, liveID, liveID}, want: map[string]outcome{liveID: noError}, calls: 1},
		{name: "empty id beside a good one", ids: []string{"", liveID, ""}, want: map[string]outcome{"": permanent("teardown"), liveID: noError}, calls: 1},
		{name: "nil stopper", stopper: nilStopper{}, ids: []string{liveID, otherID}, want: map[string]outcome{liveID: permanent("teardown"), otherID: permanent("teardown")}},
		// One id: a panic would surface on the caller's goroutine rather
		// than kill the test binary from a worker.
		{name: "nil StopperFunc", stopper: teardown.StopperFunc(nil), ids: []string{liveID}, want: map[string]outcome{liveID: permanent("teardown")}},
		{name: "bad option", ids: []string{liveID, otherID}, opts: opts(teardown.WithConcurrency(-1)), want: map[string]outcome{liveID: fails("teardown", teardown.ErrConfig), otherID: fails("teardown", teardown.ErrConfig)}},
		{name: "batch size 0", ids: []string{liveID}, opts: opts(teardown.WithBatchSize(0)), want: map[string]outcome{liveID: fails("teardown", teardown.ErrConfig)}},
		{name: "cancelled context", ctx: cancelled(), ids: []string{liveID, otherID}, want: map[string]outcome{liveID: gaveUp(context.Canceled, 0), otherID: gaveUp(context.Canceled, 0)}},
		{name: "batch stopper answering nothing", ids: []string{liveID, otherID}, opts: fast,
			stopper: batchFunc(func([]string) map[string]error { return nil }),
			want:    map[string]outcome{liveID: gaveUp(teardown.ErrExhausted, 2), otherID: gaveUp(teardown.ErrExhausted, 2)}},
		{name: "batch stopper answering for ids never asked", ids: []string{liveID}, opts: fast,
			stopper: batchFunc(func([]string) map[string]error {
				return map[string]error{liveID: nil, otherID: errors.New("not asked"), "": nil}
			}),
			want: map[string]outcome{liveID: noError}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := c.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			counter := &countingStopper{}
			s := c.stopper
			if s == nil {
				s = counter
			}
			if _, ok := s.(nilStopper); ok {
				s = nil
			}
			var res map[string]error
			call(t, func() { res = teardown.StopAll(ctx, s, c.ids, c.opts...) })
			if len(res) != len(c.want) {
				t.Errorf("StopAll returned %d results %v, want %d", len(res), res, len(c.want))
			}
			for id, want := range c.want {
				err, ok := res[id]
				if !ok {
					t.Errorf("no result for %q", id)
					continue
				}
				t.Run(fmt.Sprintf("id %q", id), func(t *testing.T) { want(t, err) })
			}
			if got := counter.seen(); len(got) != c.calls {
				t.Errorf("stopper saw %q, want %d call(s)", got, c.calls)
			}
		})
	}
}

// =====================================================================
// teardown/awsec2
// =====================================================================

func TestBadInputAWSEC2New(t *testing.T) {
	api := ec2.NewFromConfig(mototest.Config("http://127.0.0.1:1", nil)) // never called
	cases := []struct {
		name string
		api  awsec2.API
		opts []awsec2.Option
		want outcome
	}{
		{"nil API", nil, nil, fails("awsec2", teardown.ErrConfig)},
		{"nil *ec2.Client", (*ec2.Client)(nil), nil, fails("awsec2", teardown.ErrConfig)},
		{"mode -1", api, []awsec2.Option{awsec2.WithMode(-1)}, fails("awsec2", teardown.ErrConfig)},
		{"mode past Stop", api, []awsec2.Option{awsec2.WithMode(awsec2.Stop + 1)}, fails("awsec2", teardown.ErrConfig)},
		{"nil owner", api, []awsec2.Option{awsec2.WithOwner(nil)}, fails("awsec2", teardown.ErrConfig)},
		{"empty owner", api, []awsec2.Option{awsec2.WithOwner(map[string]string{})}, fails("awsec2", teardown.ErrConfig)},
		{"owner with empty key", api, []awsec2.Option{awsec2.WithOwner(map[string]string{"": "v"})}, fails("awsec2", teardown.ErrConfig)},
		{"owner with empty value", api, []awsec2.Option{awsec2.WithOwner(map[string]string{"k": ""})}, fails("awsec2", teardown.ErrConfig)},
		{"rate 0", api, []awsec2.Option{awsec2.WithRateLimit(0, 1)}, fails("awsec2", teardown.ErrConfig)},
		{"rate -1", api, []awsec2.Option{awsec2.WithRateLimit(-1, 1)}, fails("awsec2", teardown.ErrConfig)},
		{"rate NaN", api, []awsec2.Option{awsec2.WithRateLimit(math.NaN(), 1)}, fails("awsec2", teardown.ErrConfig)},
		{"rate -Inf", api, []awsec2.Option{awsec2.WithRateLimit(math.Inf(-1), 1)}, fails("awsec2", teardown.ErrConfig)},
		{"burst 0", api, []awsec2.Option{awsec2.WithRateLimit(5, 0)}, fails("awsec2", teardown.ErrConfig)},
		{"burst -1", api, []awsec2.Option{awsec2.WithRateLimit(5, -1)}, fails("awsec2", teardown.ErrConfig)},
		{"resource rate NaN", api, []awsec2.Option{awsec2.WithResourceRateLimit(math.NaN(), 1000)}, fails("awsec2", teardown.ErrConfig)},
		{"resource burst under the batch size", api, []awsec2.Option{awsec2.WithResourceRateLimit(19, 100)}, fails("awsec2", teardown.ErrConfig)},
		{"describe rate NaN", api, []awsec2.Option{awsec2.WithDescribeRateLimit(math.NaN(), 1)}, fails("awsec2", teardown.ErrConfig)},
		{"describe burst 0", api, []awsec2.Option{awsec2.WithDescribeRateLimit(1, 0)}, fails("awsec2", teardown.ErrConfig)},
		{"batch size 0", api, []awsec2.Option{awsec2.WithBatchSize(0)}, fails("awsec2", teardown.ErrConfig)},
		{"batch size -1", api, []awsec2.Option{awsec2.WithBatchSize(-1)}, fails("awsec2", teardown.ErrConfig)},
		{"batch size past EC2's 1,000", api, []awsec2.Option{awsec2.WithBatchSize(awsec2.MaxBatchSize + 1)}, fails("awsec2", teardown.ErrConfig)},
		{"nil option is skipped", api, []awsec2.Option{nil}, noError},
		{"infinite rates are documented", api, []awsec2.Option{awsec2.WithRateLimit(math.Inf(1), 1), awsec2.WithDescribeRateLimit(math.Inf(1), 1), awsec2.WithResourceRateLimit(math.Inf(1), 1)}, noError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var (
				cl  *awsec2.Client
				err error
			)
			call(t, func() { cl, err = awsec2.New(c.api, c.opts...) })
			c.want(t, err)
			if (err == nil) != (cl != nil) {
				t.Errorf("New returned client %v with error %v", cl, err)
			}
		})
	}
}

// TestBadInputAWSEC2Stop drives Stop and StopBatch against ec2fake: each
// rejected id costs no call and changes no instance.
func TestBadInputAWSEC2Stop(t *testing.T) {
	type results = map[string]outcome
	type stopCase struct {
		name       string
		ctx        context.Context
		ids        []string // StopBatch's argument; Stop's (one id) unless batch
		batch      bool
		want       results
		terminated []string   // the only instances whose state may change
		sent       [][]string // the TerminateInstances calls, by the ids each named
	}
	cases := []stopCase{
		{name: "StopBatch of nil", batch: true, ids: nil, want: results{}},
		{name: "StopBatch of every malformed id", batch: true, ids: badIDs, want: func() results {
			r := results{}
			for _, id := range badIDs {
				r[id] = permanent("awsec2", awsec2.ErrInvalidID)
			}
			return r
		}()},
		{name: "StopBatch of duplicates", batch: true, ids: []string{liveID, liveID, liveID}, want: results{liveID: noError}, terminated: []string{liveID}, sent: [][]string{{liveID}}},
		{name: "StopBatch of a malformed id beside a good one", batch: true, ids: []string{"i-0123abcd'; --", liveID},
			want: results{"i-0123abcd'; --": permanent("awsec2", awsec2.ErrInvalidID), liveID: noError}, terminated: []string{liveID}, sent: [][]string{{liveID}}},
		{name: "unknown id is not found, not yet gone", ids: []string{unknownID}, want: results{unknownID: fails("awsec2", teardown.ErrNotFound)}, sent: [][]string{{unknownID}}},
		{name: "termination-protected instance", ids: []string{otherID}, want: results{otherID: permanent("awsec2")}, sent: [][]string{{otherID}}},
		{name: "cancelled context", ctx: cancelled(), ids: []string{liveID}, want: results{liveID: fails("awsec2", context.Canceled)}},
		{name: "expired deadline", ctx: expired(), ids: []string{liveID}, want: results{liveID: fails("awsec2", context.DeadlineExceeded)}},
	}
	for _, id := range badIDs {
		cases = append(cases, stopCase{name: fmt.Sprintf("Stop %q", id), ids: []string{id}, want: results{id: permanent("awsec2", awsec2.ErrInvalidID)}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, cl := fakeEC2(t)
			srv.Launch(ec2fake.Instance{ID: liveID, Tags: ownerTags})
			srv.Launch(ec2fake.Instance{ID: otherID, Tags: ownerTags})
			srv.Protect(otherID)
			before := srv.Instances()
			ctx := c.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var res map[string]error
			call(t, func() {
				if c.batch {
					res = cl.StopBatch(ctx, c.ids)
					return
				}
				res = map[string]error{c.ids[0]: cl.Stop(ctx, c.ids[0])}
			})
			if len(res) != len(c.want) {
				t.Errorf("%d results %v, want %d", len(res), res, len(c.want))
			}
			for id, want := range c.want {
				t.Run(fmt.Sprintf("id %q", id), func(t *testing.T) { want(t, res[id]) })
			}
			for _, b := range before {
				after, _ := srv.Instance(b.ID)
				want := b.State
				if slices.Contains(c.terminated, b.ID) {
					want = ec2fake.Terminated
				}
				if after.State != want {
					t.Errorf("instance %s is %s, want %s", b.ID, after.State, want)
				}
			}
			var sent [][]string
			for _, r := range srv.Requests() {
				if r.Action == "TerminateInstances" {
					sent = append(sent, r.InstanceIDs)
				}
			}
			if !slices.EqualFunc(sent, c.sent, slices.Equal) {
				t.Errorf("TerminateInstances calls named %q, want %q", sent, c.sent)
			}
		})
	}
}

func TestBadInputAWSEC2Owned(t *testing.T) {
	cases := []struct {
		name      string
		ctx       context.Context
		owner     map[string]string // nil: no WithOwner at all
		want      outcome
		describes int
	}{
		{name: "no owner tags", want: fails("awsec2", awsec2.ErrNoOwner)},
		// EC2 filter values are wildcards; an owner value is not.
		{name: "owner value is a wildcard", owner: map[string]string{"leakless:owner": "*"}, want: noError, describes: 1},
		{name: "owner key is a wildcard", owner: map[string]string{"leakless:*": "badinput"}, want: noError, describes: 1},
		{name: "owner with quotes and semicolons", owner: map[string]string{injection: quoteSemi}, want: noError, describes: 1},
		{name: "cancelled context", owner: ownerTags, ctx: cancelled(), want: fails("awsec2", context.Canceled)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := ec2fake.New()
			t.Cleanup(srv.Close)
			srv.Launch(ec2fake.Instance{ID: liveID, Tags: ownerTags})
			var o []awsec2.Option
			if c.owner != nil {
				o = append(o, awsec2.WithOwner(c.owner))
			}
			cl, err := awsec2.New(ec2.NewFromConfig(mototest.Config(srv.URL(), srv.Client())), o...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := c.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var got []teardown.Instance
			call(t, func() { got, err = cl.Owned(ctx) })
			c.want(t, err)
			if len(got) != 0 {
				t.Errorf("Owned listed %v, want nothing: no instance carries these owner tags", got)
			}
			if n := srv.Calls("DescribeInstances"); n != c.describes {
				t.Errorf("%d DescribeInstances calls, want %d", n, c.describes)
			}
		})
	}
}

// TestBadInputAWSEC2GarbageAnswers points the real SDK at an endpoint that
// answers garbage: every answer that is not EC2 saying "done" must be an
// error a retry can get past, or a permanent one when EC2's own envelope
// says so; never success, never "gone".
func TestBadInputAWSEC2GarbageAnswers(t *testing.T) {
	type reply struct {
		status int
		body   string
	}
	stop := []struct {
		name      string
		terminate reply
		describe  *reply // the answer confirming a NotFound, if one is asked for
		want      outcome
	}{
		{name: "200, empty body", terminate: reply{200, ""}, want: retryable("awsec2")},
		{name: "200, not XML", terminate: reply{200, "junk"}, want: retryable("awsec2")},
		{name: "200, some other XML", terminate: reply{200, "<foo/>"}, want: retryable("awsec2")},
		{name: "200, HTML", terminate: reply{200, "<html><body>OK</body></html>"}, want: retryable("awsec2")},
		{name: "200, truncated XML", terminate: reply{200, "<TerminateInstancesResponse><instancesSet><item><instanceId>" + liveID}, want: retryable("awsec2")},
		{name: "200, EC2's answer naming no instance", terminate: reply{200, terminateNamesNone}, want: retryable("awsec2")},
		{name: "200, EC2's answer naming another instance", terminate: reply{200, terminated(otherID)}, want: retryable("awsec2")},
		{name: "200, EC2's answer naming it", terminate: reply{200, terminated(liveID)}, want: noError},
		{name: "500, not XML", terminate: reply{500, "junk"}, want: retryable("awsec2")},
		{name: "500, empty body", terminate: reply{500, ""}, want: retryable("awsec2")},
		{name: "502, HTML", terminate: reply{502, "<html><body><h1>502 Bad Gateway</h1></body></html>"}, want: retryable("awsec2")},
		{name: "503, throttled", terminate: reply{503, ec2Error("RequestLimitExceeded", "Request limit exceeded.")}, want: retryable("awsec2")},
		{name: "400, truncated error envelope", terminate: reply{400, "<Response><Errors><Error><Code>Unauthorized"}, want: retryable("awsec2")},
		{name: "400, envelope without a code", terminate: reply{400, "<Response><Errors><Error><Message>m</Message></Error></Errors></Response>"}, want: retryable("awsec2")},
		{name: "404, plain text", terminate: reply{404, "404 page not found"}, want: retryable("awsec2")},
		{name: "302, no location", terminate: reply{302, ""}, want: retryable("awsec2")},
		{name: "403, UnauthorizedOperation", terminate: reply{403, ec2Error("UnauthorizedOperation", "You are not authorized to perform this operation.")}, want: allOf(permanent("awsec2"), hasCode("UnauthorizedOperation"))},
		{name: "400, InvalidParameterValue", terminate: reply{400, ec2Error("InvalidParameterValue", "Value ("+liveID+") for parameter instanceId is invalid.")}, want: allOf(permanent("awsec2"), hasCode("InvalidParameterValue"))},
		{name: "400, OperationNotPermitted", terminate: reply{400, ec2Error("OperationNotPermitted", "The instance '"+liveID+"' may not be terminated.")}, want: allOf(permanent("awsec2"), hasCode("OperationNotPermitted"))},
		{name: "NotFound, and an empty DescribeInstances: not found, not yet gone", terminate: reply{400, notFoundBody(liveID)}, describe: &reply{200, describeEmpty}, want: fails("awsec2", teardown.ErrNotFound)},
		{name: "NotFound, DescribeInstances answers 200 and nothing", terminate: reply{400, notFoundBody(liveID)}, describe: &reply{200, ""}, want: retryable("awsec2")},
		{name: "NotFound, DescribeInstances answers 200 and junk", terminate: reply{400, notFoundBody(liveID)}, describe: &reply{200, "junk"}, want: retryable("awsec2")},
		{name: "NotFound, DescribeInstances answers 500", terminate: reply{400, notFoundBody(liveID)}, describe: &reply{500, "junk"}, want: retryable("awsec2")},
		{name: "NotFound naming garbage", terminate: reply{400, ec2Error("InvalidInstanceID.NotFound", "\x01<>&'\" i-")}, describe: &reply{500, "junk"}, want: retryable("awsec2")},
	}
	for _, c := range stop {
		t.Run("Stop/"+c.name, func(t *testing.T) {
			stub := newEC2Stub(t)
			stub.answer("TerminateInstances", c.terminate.status, c.terminate.body)
			if c.describe != nil {
				stub.answer("DescribeInstances", c.describe.status, c.describe.body)
			}
			cl, err := awsec2.New(stub.api())
			if err != nil {
				t.Fatal(err)
			}
			call(t, func() { err = cl.Stop(context.Background(), liveID) })
			c.want(t, err)
			if n := stub.callsOf("TerminateInstances"); n != 1 {
				t.Errorf("%d TerminateInstances requests, want 1: the SDK must not retry on its own", n)
			}
		})
	}

	owned := []struct {
		name     string
		describe reply
		want     outcome
	}{
		{"200, empty body", reply{200, ""}, fails("awsec2")},
		{"200, not XML", reply{200, "junk"}, fails("awsec2")},
		{"200, some other XML", reply{200, "<foo/>"}, fails("awsec2")},
		{"200, EC2's empty answer", reply{200, describeEmpty}, noError},
		{"200, an instance without the owner tags", reply{200, describeOne(liveID, "running", nil)}, noError},
		{"200, an instance with the tag key but another value", reply{200, describeOne(liveID, "running", map[string]string{"leakless:owner": "someone-else"})}, noError},
		{"200, an owned instance already terminated", reply{200, describeOne(liveID, "terminated", ownerTags)}, noError},
		{"500, not XML", reply{500, "junk"}, fails("awsec2")},
		{"400, InvalidParameterValue", reply{400, ec2Error("InvalidParameterValue", "The filter 'tag:x' is invalid")}, fails("awsec2")},
	}
	for _, c := range owned {
		t.Run("Owned/"+c.name, func(t *testing.T) {
			stub := newEC2Stub(t)
			stub.answer("DescribeInstances", c.describe.status, c.describe.body)
			cl, err := awsec2.New(stub.api(), awsec2.WithOwner(ownerTags))
			if err != nil {
				t.Fatal(err)
			}
			var got []teardown.Instance
			call(t, func() { got, err = cl.Owned(context.Background()) })
			c.want(t, err)
			if len(got) != 0 {
				t.Errorf("Owned listed %v, want nothing", got)
			}
		})
	}
}

// describeOne is a DescribeInstances answer holding one instance.
func describeOne(id, state string, tags map[string]string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse ` + ec2xmlns + `><requestId>r-1</requestId><reservationSet><item><reservationId>r-0123</reservationId><instancesSet><item>`)
	b.WriteString(`<instanceId>` + id + `</instanceId><instanceState><code>16</code><name>` + state + `</name></instanceState><launchTime>2020-01-01T00:00:00.000Z</launchTime><tagSet>`)
	for k, v := range tags {
		b.WriteString(`<item><key>` + k + `</key><value>` + v + `</value></item>`)
	}
	b.WriteString(`</tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>`)
	return b.String()
}

// hasCode wants err to keep EC2's error code reachable with errors.As.
func hasCode(code string) outcome {
	return func(t *testing.T, err error) {
		t.Helper()
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != code {
			t.Errorf("error %q does not carry EC2's code %s", err, code)
		}
	}
}

// TestBadInputAWSEC2HungEndpoint points the SDK at an endpoint that never
// answers: the caller's deadline, or the attempt timeout, ends each call.
func TestBadInputAWSEC2HungEndpoint(t *testing.T) {
	stub := newEC2Stub(t)
	stub.hang("TerminateInstances")
	stub.hang("DescribeInstances")
	cl, err := awsec2.New(stub.api(), awsec2.WithOwner(ownerTags))
	if err != nil {
		t.Fatal(err)
	}
	deadline := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 200*time.Millisecond)
	}
	perAttempt := opts(teardown.WithAttemptTimeout(100*time.Millisecond), teardown.WithMaxAttempts(2), teardown.WithBackoff(0, 0))
	cases := []struct {
		name string
		run  func() []error // one error per id
		want outcome
	}{
		{"Stop under a deadline", func() []error {
			ctx, cancel := deadline()
			defer cancel()
			return []error{cl.Stop(ctx, liveID)}
		}, retryable("awsec2", context.DeadlineExceeded)},
		{"StopBatch under a deadline", func() []error {
			ctx, cancel := deadline()
			defer cancel()
			return resultsFor(cl.StopBatch(ctx, []string{liveID, otherID}), liveID, otherID)
		}, retryable("awsec2", context.DeadlineExceeded)},
		{"Owned under a deadline", func() []error {
			ctx, cancel := deadline()
			defer cancel()
			_, err := cl.Owned(ctx)
			return []error{err}
		}, fails("awsec2", context.DeadlineExceeded)},
		{"StopWithRetry with an attempt timeout", func() []error {
			return []error{teardown.StopWithRetry(context.Background(), cl, liveID, perAttempt...)}
		}, allOf(gaveUp(teardown.ErrExhausted, 2), fails("teardown", context.DeadlineExceeded))},
		{"StopAll with an attempt timeout", func() []error {
			return resultsFor(teardown.StopAll(context.Background(), cl, []string{liveID, otherID}, perAttempt...), liveID, otherID)
		}, allOf(gaveUp(teardown.ErrExhausted, 2), fails("teardown", context.DeadlineExceeded))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var errs []error
			within(t, 3*time.Second, func() { call(t, func() { errs = c.run() }) })
			for _, err := range errs {
				c.want(t, err)
			}
		})
	}
}

// resultsFor returns res's entries for ids, in order; a missing entry is
// an error that names no package, so every check rejects it.
func resultsFor(res map[string]error, ids ...string) []error {
	errs := make([]error, len(ids))
	for i, id := range ids {
		err, ok := res[id]
		if !ok {
			err = fmt.Errorf("no result for %s", id)
		}
		errs[i] = err
	}
	return errs
}

// =====================================================================
// teardown/awsec2/ec2fake
// =====================================================================

func TestBadInputEC2Fake(t *testing.T) {
	t.Run("nil option is skipped", func(t *testing.T) {
		call(t, func() { describeThrough(t, ec2fake.New(nil)) })
	})
	t.Run("nil clock keeps the real one", func(t *testing.T) {
		call(t, func() { describeThrough(t, ec2fake.New(ec2fake.WithClock(nil))) })
	})
	t.Run("Launch in a state EC2 does not have panics, as documented", func(t *testing.T) {
		srv := ec2fake.New()
		defer srv.Close()
		defer func() {
			if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "ec2fake: ") {
				t.Errorf("Launch(State: bogus) recovered %v, want a panic naming ec2fake", r)
			}
		}()
		srv.Launch(ec2fake.Instance{State: "bogus"})
	})
	t.Run("scripted faults with nonsense counts and rates do nothing", func(t *testing.T) {
		srv, cl := fakeEC2(t)
		srv.Launch(ec2fake.Instance{ID: liveID, Tags: ownerTags})
		call(t, func() {
			srv.Fail("TerminateInstances", "InternalError", -1)
			srv.FailWith("TerminateInstances", ec2fake.Fault{Code: "InternalError"}, 0)
			srv.SetErrorRate("TerminateInstances", "InternalError", math.NaN())
			srv.SetErrorRate("TerminateInstances", "InternalError", -1)
			srv.SetLatency("TerminateInstances", -time.Hour)
		})
		if err := cl.Stop(context.Background(), liveID); err != nil {
			t.Errorf("Stop: %v, want success: no fault was really scheduled", err)
		}
	})
	t.Run("Protect of an unknown instance", func(t *testing.T) {
		srv := ec2fake.New()
		defer srv.Close()
		if srv.Protect(unknownID) {
			t.Error("Protect reported an instance that does not exist")
		}
	})
	t.Run("Launch with a hostile id, which the client refuses to send", func(t *testing.T) {
		srv, cl := fakeEC2(t)
		id := srv.Launch(ec2fake.Instance{ID: injection, Tags: ownerTags})
		permanent("awsec2", awsec2.ErrInvalidID)(t, cl.Stop(context.Background(), id))
		if in, _ := srv.Instance(id); in.State != ec2fake.Running || srv.Calls("TerminateInstances") != 0 {
			t.Errorf("instance %q is %s after %d calls, want running after none", id, in.State, srv.Calls("TerminateInstances"))
		}
	})

	// The wire: malformed requests get EC2's error envelope and change nothing.
	wire := []struct {
		name, body, code string
	}{
		{"malformed form body", "Action=DescribeInstances&%zz", "MalformedQueryString"},
		{"no action", "Version=2016-11-15", "InvalidAction"},
		{"unknown action", "Action=DropTable%3B--", "InvalidAction"},
		{"terminate naming nothing", "Action=TerminateInstances", "InvalidParameterCombination"},
		{"terminate with an index past int", "Action=TerminateInstances&InstanceId.99999999999999999999=" + liveID, "InvalidParameterCombination"},
		{"terminate a malformed id", "Action=TerminateInstances&InstanceId.1=" + url.QueryEscape(injection), "InvalidInstanceID.Malformed"},
		{"terminate an unknown id beside a live one", "Action=TerminateInstances&InstanceId.1=" + liveID + "&InstanceId.2=" + unknownID, "InvalidInstanceID.NotFound"},
		{"describe with MaxResults not a number", "Action=DescribeInstances&MaxResults=abc", "InvalidParameterValue"},
		{"describe with MaxResults 0", "Action=DescribeInstances&MaxResults=0", "InvalidParameterValue"},
		{"describe with a forged NextToken", "Action=DescribeInstances&MaxResults=5&NextToken=ec2fake--1", "InvalidParameterValue"},
		{"describe with an unknown filter", "Action=DescribeInstances&Filter.1.Name=owner%27%3B&Filter.1.Value.1=x", "InvalidParameterValue"},
		{"run without an image", "Action=RunInstances&MinCount=1&MaxCount=1", "MissingParameter"},
		{"run with MinCount -1", "Action=RunInstances&ImageId=ami-1&MinCount=-1&MaxCount=1", "InvalidParameterValue"},
		{"run with MaxCount under MinCount", "Action=RunInstances&ImageId=ami-1&MinCount=2&MaxCount=1", "InvalidParameterValue"},
		{"run with MaxCount not a number", "Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=1e9", "InvalidParameterValue"},
		// Thirty bytes of form must not make the fake allocate without bound.
		{"run with MinCount past the fake's launch limit", "Action=RunInstances&ImageId=ami-1&MinCount=5000&MaxCount=5000", "InstanceLimitExceeded"},
	}
	for _, c := range wire {
		t.Run("wire/"+c.name, func(t *testing.T) {
			srv := ec2fake.New()
			defer srv.Close()
			srv.Launch(ec2fake.Instance{ID: liveID, Tags: ownerTags})
			before := srv.Instances()
			status, body := post(t, srv, c.body)
			if status < 400 || status > 599 {
				t.Errorf("status %d, want a 4xx or 5xx", status)
			}
			if got := errorCode(body); got != c.code {
				t.Errorf("error code %q in %q, want %q", got, body, c.code)
			}
			if after := srv.Instances(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("instances changed: %v, was %v", after, before)
			}
		})
	}
}

// describeThrough lists srv's instances through a client that makes one
// request per call, then closes srv. A fake that wedges fails the test
// rather than hang it.
func describeThrough(t *testing.T, srv *ec2fake.Server) {
	t.Helper()
	srv.Launch(ec2fake.Instance{ID: liveID, Tags: ownerTags})
	cl, err := awsec2.New(ec2.NewFromConfig(mototest.Config(srv.URL(), srv.Client())), awsec2.WithOwner(ownerTags))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := cl.Owned(ctx)
		if err == nil && len(got) != 1 {
			err = fmt.Errorf("listed %v, want %s", got, liveID)
		}
		srv.Close()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Owned: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the fake wedged: no answer and no Close within 10s")
	}
}

// post sends body to srv as an EC2 Query-protocol request.
func post(t *testing.T, srv *ec2fake.Server, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %q: %v", body, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// errorCode is the code in EC2's error envelope, or "".
func errorCode(body string) string {
	var env struct {
		Errors []struct {
			Code string `xml:"Code"`
		} `xml:"Errors>Error"`
	}
	if xml.Unmarshal([]byte(body), &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

// =====================================================================
// events
// =====================================================================

// Hostile and malformed table or column names: none is a plain identifier.
var badIdents = []string{
	"", " ", `structure"events`, "events;drop", injection, long64, "1events", "évents", "ev-ents",
	"ev ents", "ev\x00", "ev\xff", `"events"`, "ev.", ".ev", "a..b", "$1", "ev\nents",
}

// badTableNames adds what only a schema-qualified name can get wrong.
var badTableNames = append(slices.Clone(badIdents), "a.b.c", "sch."+long64, long64+".t", "sch.", ".t", "sch.1t")

func TestBadInputEventsNew(t *testing.T) {
	pool := downPool(t, deadURL(t)) // constructors do no I/O
	db := downSQL(t, deadURL(t))
	type ctor struct {
		name string
		new  func(opts ...events.Option) (*events.Postgres, error)
	}
	ctors := []ctor{
		{"pgx", func(o ...events.Option) (*events.Postgres, error) { return events.NewPgx(pool, o...) }},
		{"sql", func(o ...events.Option) (*events.Postgres, error) { return events.NewSQL(db, o...) }},
	}
	type tc struct {
		name string
		opts []events.Option
		want outcome
	}
	var cases []tc
	for _, n := range badTableNames {
		cases = append(cases, tc{fmt.Sprintf("table %q", n), []events.Option{events.WithTable(n)}, fails("events", events.ErrConfig)})
	}
	for _, n := range append(slices.Clone(badIdents), "a.b") {
		cases = append(cases, tc{fmt.Sprintf("subject column %q", n), []events.Option{events.WithSubjectColumn(n)}, fails("events", events.ErrConfig)})
	}
	cases = append(cases,
		tc{"write timeout 0", []events.Option{events.WithWriteTimeout(0)}, fails("events", events.ErrConfig)},
		tc{"write timeout -1ns", []events.Option{events.WithWriteTimeout(-1)}, fails("events", events.ErrConfig)},
		tc{"write timeout most negative", []events.Option{events.WithWriteTimeout(math.MinInt64)}, fails("events", events.ErrConfig)},
		tc{"bad table after a good one", []events.Option{events.WithTable("ok"), events.WithTable(injection)}, fails("events", events.ErrConfig)},
		tc{"nil option is skipped", []events.Option{nil}, noError},
		tc{"63-byte table", []events.Option{events.WithTable(long63)}, noError},
		tc{"63-byte schema and table", []events.Option{events.WithTable(long63 + "." + long63)}, noError},
		tc{"reserved word as table", []events.Option{events.WithTable("select")}, noError},
		tc{"63-byte subject column", []events.Option{events.WithSubjectColumn(long63)}, noError},
	)
	for _, k := range ctors {
		for _, c := range cases {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				var (
					sink *events.Postgres
					err  error
				)
				call(t, func() { sink, err = k.new(c.opts...) })
				c.want(t, err)
				if (err == nil) != (sink != nil) {
					t.Errorf("returned sink %v with error %v", sink, err)
				}
			})
		}
	}

	nilDBs := []struct {
		name string
		new  func() (*events.Postgres, error)
	}{
		{"NewPgx(nil)", func() (*events.Postgres, error) { return events.NewPgx(nil) }},
		{"NewPgx((*pgxpool.Pool)(nil))", func() (*events.Postgres, error) { return events.NewPgx((*pgxpool.Pool)(nil)) }},
		{"NewPgx((*pgx.Conn)(nil))", func() (*events.Postgres, error) { return events.NewPgx((*pgx.Conn)(nil)) }},
		{"NewSQL(nil)", func() (*events.Postgres, error) { return events.NewSQL(nil) }},
	}
	for _, c := range nilDBs {
		t.Run(c.name, func(t *testing.T) {
			var err error
			call(t, func() { _, err = c.new() })
			fails("events", events.ErrConfig)(t, err)
		})
	}
}

// unmarshallable is a payload value whose MarshalJSON fails.
type unmarshallable struct{}

func (unmarshallable) MarshalJSON() ([]byte, error) { return nil, errors.New("refused") }

// eventsEnv is one driver's sink on a migrated table, and a way to open a
// transaction of that driver's kind.
type eventsEnv struct {
	sink  *events.Postgres
	begin func(t *testing.T) (tx any, commit func() error)
}

func TestBadInputEventsWrites(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	pgxSink, err := events.NewPgx(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := pgxSink.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sqlSink, err := events.NewSQL(db.SQL)
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]eventsEnv{
		"pgx": {pgxSink, func(t *testing.T) (any, func() error) {
			tx, err := db.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback(ctx) })
			return tx, func() error { return tx.Commit(ctx) }
		}},
		"sql": {sqlSink, func(t *testing.T) (any, func() error) {
			tx, err := db.SQL.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback() })
			return tx, tx.Commit
		}},
	}
	good := events.Event{Type: "badinput.good", Subject: "w-1", Payload: map[string]any{"n": 1}}
	with := func(payload map[string]any) events.Event {
		e := good
		e.Payload = payload
		return e
	}
	emit := func(e events.Event) func(*testing.T, context.Context, eventsEnv) error {
		return func(_ *testing.T, ctx context.Context, env eventsEnv) error { return env.sink.Emit(ctx, e) }
	}
	batch := func(es ...events.Event) func(*testing.T, context.Context, eventsEnv) error {
		return func(_ *testing.T, ctx context.Context, env eventsEnv) error { return env.sink.EmitBatch(ctx, es) }
	}
	list := func(f events.Filter, want int) func(*testing.T, context.Context, eventsEnv) error {
		return func(t *testing.T, ctx context.Context, env eventsEnv) error {
			got, err := env.sink.List(ctx, f)
			if err == nil && want >= 0 && len(got) != want {
				t.Errorf("List(%+v) = %d events, want %d", f, len(got), want)
			}
			return err
		}
	}
	type tc struct {
		name    string
		ctx     context.Context
		run     func(*testing.T, context.Context, eventsEnv) error
		want    outcome
		written int
	}
	cases := []tc{
		{name: "Emit, payload holds a channel", run: emit(with(map[string]any{"c": make(chan int)})), want: fails("events", events.ErrPayload)},
		{name: "Emit, payload holds a func", run: emit(with(map[string]any{"f": func() {}})), want: fails("events", events.ErrPayload)},
		{name: "Emit, payload holds NaN", run: emit(with(map[string]any{"x": math.NaN()})), want: fails("events", events.ErrPayload)},
		{name: "Emit, payload holds +Inf", run: emit(with(map[string]any{"x": math.Inf(1)})), want: fails("events", events.ErrPayload)},
		{name: "Emit, payload holds a complex deep down", run: emit(with(map[string]any{"a": []any{map[string]any{"z": complex(1, 1)}}})), want: fails("events", events.ErrPayload)},
		{name: "Emit, payload whose MarshalJSON fails", run: emit(with(map[string]any{"u": unmarshallable{}})), want: fails("events", events.ErrPayload)},
		{name: "Emit, payload string with a NUL byte", run: emit(with(map[string]any{"s": "a\x00b"})), want: fails("events")},
		{name: "Emit, type with a NUL byte", run: emit(events.Event{Type: "t\x00"}), want: fails("events")},
		{name: "Emit, type not UTF-8", run: emit(events.Event{Type: "t\xff"}), want: fails("events")},
		{name: "Emit, subject with a NUL byte", run: emit(events.Event{Type: "t", Subject: "s\x00"}), want: fails("events")},
		{name: "Emit, hostile type and subject are values", run: func(t *testing.T, ctx context.Context, env eventsEnv) error {
			subject := injection + long64 + t.Name()
			if err := env.sink.Emit(ctx, events.Event{Type: injection, Subject: subject}); err != nil {
				return err
			}
			return list(events.Filter{Type: injection, Subject: subject}, 1)(t, ctx, env)
		}, want: noError, written: 1},
		{name: "Emit, cancelled context still writes (documented)", ctx: cancelled(), run: emit(good), want: noError, written: 1},
		{name: "Emit, expired deadline still writes (documented)", ctx: expired(), run: emit(good), want: noError, written: 1},
		{name: "EmitBatch of nil", run: batch(), want: noError},
		{name: "EmitBatch, one payload holds a channel", run: batch(good, good, with(map[string]any{"c": make(chan int)})), want: fails("events", events.ErrPayload)},
		{name: "EmitBatch, one type with a NUL byte", run: batch(good, events.Event{Type: "t\x00"}, good), want: fails("events")},
		{name: "EmitBatch, one payload string with a NUL byte", run: batch(good, with(map[string]any{"s": "\x00"})), want: fails("events")},
		{name: "EmitBatch, one subject not UTF-8", run: batch(good, events.Event{Type: "t", Subject: "\xff"}), want: fails("events")},
		{name: "EmitBatch, cancelled context still writes (documented)", ctx: cancelled(), run: batch(good, good), want: noError, written: 2},
		{name: "EmitTx, nil transaction", run: func(_ *testing.T, ctx context.Context, env eventsEnv) error {
			return env.sink.EmitTx(ctx, nil, good)
		}, want: fails("events", events.ErrUnsupportedTx)},
		{name: "EmitTx, a string for a transaction", run: func(_ *testing.T, ctx context.Context, env eventsEnv) error {
			return env.sink.EmitTx(ctx, "BEGIN", good)
		}, want: fails("events", events.ErrUnsupportedTx)},
		{name: "EmitTx, nil *sql.Tx", run: func(_ *testing.T, ctx context.Context, env eventsEnv) error {
			return env.sink.EmitTx(ctx, (*sql.Tx)(nil), good)
		}, want: fails("events", events.ErrUnsupportedTx)},
		{name: "EmitTx, committed transaction", run: func(t *testing.T, ctx context.Context, env eventsEnv) error {
			tx, commit := env.begin(t)
			if err := commit(); err != nil {
				t.Fatal(err)
			}
			return env.sink.EmitTx(ctx, tx, good)
		}, want: fails("events")},
		{name: "EmitTx, bad payload leaves the transaction usable", run: func(t *testing.T, ctx context.Context, env eventsEnv) error {
			tx, commit := env.begin(t)
			err := env.sink.EmitTx(ctx, tx, with(map[string]any{"c": make(chan int)}))
			if cerr := commit(); cerr != nil {
				t.Errorf("commit after a rejected event: %v", cerr)
			}
			return err
		}, want: fails("events", events.ErrPayload)},
		{name: "EmitTx, cancelled context", ctx: cancelled(), run: func(t *testing.T, ctx context.Context, env eventsEnv) error {
			tx, _ := env.begin(t)
			return env.sink.EmitTx(ctx, tx, good)
		}, want: fails("events", context.Canceled)},
		{name: "List, negative limit", run: list(events.Filter{Limit: -5}, -1), want: fails("events", events.ErrFilter)},
		{name: "List, Since after Until", run: list(events.Filter{Since: time.Now(), Until: time.Now().Add(-time.Hour)}, 0), want: noError},
		{name: "List, hostile subject is a value", run: list(events.Filter{Subject: injection}, 0), want: noError},
		{name: "List, type with a NUL byte", run: list(events.Filter{Type: "\x00"}, 0), want: fails("events")},
		{name: "List, cancelled context", ctx: cancelled(), run: list(events.Filter{}, 0), want: fails("events", context.Canceled)},
	}
	for _, name := range []string{"pgx", "sql"} {
		env := envs[name]
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				ctx := c.ctx
				if ctx == nil {
					ctx = context.Background()
				}
				before := countRows(t, db.Pool, events.DefaultTable)
				var err error
				call(t, func() { err = c.run(t, ctx, env) })
				c.want(t, err)
				if got := countRows(t, db.Pool, events.DefaultTable) - before; got != c.written {
					t.Errorf("%d rows written, want %d", got, c.written)
				}
			})
		}
	}
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// TestBadInputEventsDatabaseDown writes to a database that refuses
// connections and to one that accepts them and never answers: every call
// fails with an events error within its bound.
func TestBadInputEventsDatabaseDown(t *testing.T) {
	servers := map[string]string{"refused": deadURL(t), "silent": silentURL(t)}
	for _, server := range []string{"refused", "silent"} {
		sinks := map[string]func() (*events.Postgres, error){
			"pgx": func() (*events.Postgres, error) {
				return events.NewPgx(downPool(t, servers[server]), events.WithWriteTimeout(200*time.Millisecond))
			},
			"sql": func() (*events.Postgres, error) {
				return events.NewSQL(downSQL(t, servers[server]), events.WithWriteTimeout(200*time.Millisecond))
			},
		}
		for _, driver := range []string{"pgx", "sql"} {
			sink, err := sinks[driver]()
			if err != nil {
				t.Fatalf("%s/%s: constructors do no I/O, yet: %v", server, driver, err)
			}
			short := func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			}
			calls := map[string]func() error{
				"Emit":                   func() error { return sink.Emit(context.Background(), events.Event{Type: "t"}) },
				"Emit, cancelled caller": func() error { return sink.Emit(cancelled(), events.Event{Type: "t"}) },
				"EmitBatch":              func() error { return sink.EmitBatch(context.Background(), []events.Event{{Type: "t"}, {Type: "u"}}) },
				"List": func() error {
					ctx, cancel := short()
					defer cancel()
					_, err := sink.List(ctx, events.Filter{})
					return err
				},
				"Migrate": func() error {
					ctx, cancel := short()
					defer cancel()
					return sink.Migrate(ctx)
				},
			}
			for _, name := range slices.Sorted(maps.Keys(calls)) {
				t.Run(server+"/"+driver+"/"+name, func(t *testing.T) {
					var err error
					within(t, 3*time.Second, func() { call(t, func() { err = calls[name]() }) })
					fails("events")(t, err)
				})
			}
		}
	}
}

// failingSink refuses every event.
type failingSink struct{}

var errSinkDown = errors.New("sink down")

func (failingSink) Emit(context.Context, events.Event) error { return errSinkDown }

func TestBadInputEventsGlue(t *testing.T) {
	ctx := context.Background()
	gaveUpErr := &teardown.RetryError{ID: liveID, Attempts: 3, Cause: teardown.ErrExhausted, Last: errors.New("boom")}

	t.Run("Exhausted with a nil sink", func(t *testing.T) {
		call(t, func() { events.Exhausted(nil, "")(ctx, gaveUpErr) })
	})
	t.Run("Exhausted with a nil RetryError", func(t *testing.T) {
		mem := events.NewMemory()
		call(t, func() { events.Exhausted(mem, "")(ctx, nil) })
		if got := mem.Events(); len(got) != 0 {
			t.Errorf("emitted %v for a nil RetryError", got)
		}
	})
	t.Run("Exhausted with a failing sink", func(t *testing.T) {
		call(t, func() { events.Exhausted(failingSink{}, "")(cancelled(), gaveUpErr) })
	})
	t.Run("Exhausted keeps a last error holding NUL and invalid UTF-8", func(t *testing.T) {
		// The one record of a leak must be written whatever the stopper's
		// error text holds.
		db := pgtest.Open(t)
		sink, err := events.NewPgx(db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		if err := sink.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		re := &teardown.RetryError{ID: liveID, Attempts: 2, Cause: teardown.ErrExhausted, Last: errors.New("garbage \x00 from \xff the wire")}
		call(t, func() { events.Exhausted(sink, "")(cancelled(), re) })
		got, err := sink.List(ctx, events.Filter{Subject: liveID})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("%d events recorded for the exhausted stop, want 1", len(got))
		}
		if last, _ := got[0].Payload["last_error"].(string); !utf8.ValidString(last) || !strings.Contains(last, "garbage") {
			t.Errorf("last_error %q, want the stopper's text, made storable", last)
		}
	})
	t.Run("BestEffort over a nil sink", func(t *testing.T) {
		var err error
		call(t, func() { err = events.BestEffort(nil, discardLog).Emit(ctx, events.Event{Type: "t"}) })
		noError(t, err)
	})
	t.Run("BestEffort over a failing sink, unmarshallable payload", func(t *testing.T) {
		var err error
		call(t, func() {
			err = events.BestEffort(failingSink{}, discardLog).Emit(cancelled(), events.Event{Type: "t", Payload: map[string]any{"c": make(chan int)}})
		})
		noError(t, err)
	})
	t.Run("Multi of nothing", func(t *testing.T) {
		var err error
		call(t, func() { err = events.Multi().Emit(ctx, events.Event{Type: "t"}) })
		noError(t, err)
	})
	t.Run("Multi of nil sinks", func(t *testing.T) {
		var err error
		call(t, func() { err = events.Multi(nil, nil).Emit(ctx, events.Event{Type: "t"}) })
		noError(t, err)
	})
	t.Run("Multi with a failing sink still reaches the rest", func(t *testing.T) {
		mem := events.NewMemory()
		var err error
		call(t, func() { err = events.Multi(failingSink{}, nil, mem).Emit(ctx, events.Event{Type: "t"}) })
		if !errors.Is(err, errSinkDown) {
			t.Errorf("Multi: %v, want the failing sink's error", err)
		}
		if len(mem.Events()) != 1 {
			t.Errorf("the sink after the failing one got %d events, want 1", len(mem.Events()))
		}
	})
}

// =====================================================================
// store
// =====================================================================

// hostTable is the host's table the store tests point at.
var hostTable = store.Table{Name: "workspaces", ID: "id", Parent: "parent_id", Status: "status", InstanceID: "instance_id", Removed: "removed"}

const hostDDL = `CREATE TABLE workspaces (id text PRIMARY KEY, parent_id text, status text NOT NULL, instance_id text)`

// The rows every store test starts from: a live tree (w1 with child w2),
// a removed row still holding its instance (w3, pending) and a live row
// still provisioning (w4).
var hostRows = []store.Row{
	{ID: "w1", Status: "running", InstanceID: "i-00000000000000001"},
	{ID: "w2", Parent: "w1", Status: "running", InstanceID: "i-00000000000000002"},
	{ID: "w3", Status: "removed", InstanceID: liveID},
	{ID: "w4", Status: "provisioning"},
}

func TestBadInputStoreNew(t *testing.T) {
	pool := downPool(t, deadURL(t)) // constructors do no I/O
	db := downSQL(t, deadURL(t))
	type tc struct {
		name  string
		table func(*store.Table)
		opts  []store.Option
		want  outcome
	}
	set := func(f func(*store.Table, string), v string) func(*store.Table) {
		return func(t *store.Table) { f(t, v) }
	}
	var cases []tc
	for _, n := range badTableNames {
		cases = append(cases, tc{fmt.Sprintf("Name %q", n), set(func(t *store.Table, v string) { t.Name = v }, n), nil, fails("store", store.ErrConfig)})
	}
	for _, n := range append(slices.Clone(badIdents), "a.b") {
		if n == "" {
			cases = append(cases, tc{"Parent \"\" means none", set(func(t *store.Table, v string) { t.Parent = v }, n), nil, noError})
		} else {
			cases = append(cases, tc{fmt.Sprintf("Parent %q", n), set(func(t *store.Table, v string) { t.Parent = v }, n), nil, fails("store", store.ErrConfig)})
		}
		cases = append(cases,
			tc{fmt.Sprintf("ID %q", n), set(func(t *store.Table, v string) { t.ID = v }, n), nil, fails("store", store.ErrConfig)},
			tc{fmt.Sprintf("Status %q", n), set(func(t *store.Table, v string) { t.Status = v }, n), nil, fails("store", store.ErrConfig)},
			tc{fmt.Sprintf("InstanceID %q", n), set(func(t *store.Table, v string) { t.InstanceID = v }, n), nil, fails("store", store.ErrConfig)},
		)
		if n != "" {
			cases = append(cases, tc{fmt.Sprintf("WithSchema %q", n), nil, []store.Option{store.WithSchema(n)}, fails("store", store.ErrConfig)})
		}
	}
	for _, v := range []string{"", "\x00", "removed\x00", "\xff", strings.Repeat("r", 256)} {
		cases = append(cases, tc{fmt.Sprintf("Removed %q", trunc(v)), set(func(t *store.Table, v string) { t.Removed = v }, v), nil, fails("store", store.ErrConfig)})
	}
	for _, v := range []string{quoteSemi, `back\slash`, `'`, `\'; DROP TABLE workspaces; --`, strings.Repeat("r", 255), "🗑"} {
		cases = append(cases, tc{fmt.Sprintf("Removed %q is a literal", trunc(v)), set(func(t *store.Table, v string) { t.Removed = v }, v), nil, noError})
	}
	cases = append(cases,
		// One column cannot be two: a Status that is also the InstanceID
		// would have Reaped clear the status of a removed row.
		tc{"Status is InstanceID", func(t *store.Table) { t.InstanceID = t.Status }, nil, fails("store", store.ErrConfig)},
		tc{"ID is InstanceID", func(t *store.Table) { t.InstanceID = t.ID }, nil, fails("store", store.ErrConfig)},
		tc{"Parent is ID", func(t *store.Table) { t.Parent = t.ID }, nil, fails("store", store.ErrConfig)},
		tc{"Parent is Status", func(t *store.Table) { t.Parent = t.Status }, nil, fails("store", store.ErrConfig)},
		tc{"zero Table", func(t *store.Table) { *t = store.Table{} }, nil, fails("store", store.ErrConfig)},
		tc{"nil option is skipped", nil, []store.Option{nil}, noError},
		tc{"63-byte names", func(t *store.Table) { t.Name, t.ID = long63+"."+long63, long63 }, []store.Option{store.WithSchema(long63)}, noError},
	)
	ctors := map[string]func(store.Table, ...store.Option) (*store.Postgres, error){
		"pgx": func(tb store.Table, o ...store.Option) (*store.Postgres, error) { return store.NewPgx(pool, tb, o...) },
		"sql": func(tb store.Table, o ...store.Option) (*store.Postgres, error) { return store.NewSQL(db, tb, o...) },
	}
	for _, driver := range []string{"pgx", "sql"} {
		for _, c := range cases {
			t.Run(driver+"/"+c.name, func(t *testing.T) {
				tb := hostTable
				if c.table != nil {
					c.table(&tb)
				}
				var (
					st  *store.Postgres
					err error
				)
				call(t, func() { st, err = ctors[driver](tb, c.opts...) })
				c.want(t, err)
				if (err == nil) != (st != nil) {
					t.Errorf("returned store %v with error %v", st, err)
				}
			})
		}
	}
	nilDBs := map[string]func() (*store.Postgres, error){
		"NewPgx(nil)":                     func() (*store.Postgres, error) { return store.NewPgx(nil, hostTable) },
		"NewPgx((*pgxpool.Pool)(nil))":    func() (*store.Postgres, error) { return store.NewPgx((*pgxpool.Pool)(nil), hostTable) },
		"NewPgx((*pgx.Conn)(nil))":        func() (*store.Postgres, error) { return store.NewPgx((*pgx.Conn)(nil), hostTable) },
		"NewSQL(nil)":                     func() (*store.Postgres, error) { return store.NewSQL(nil, hostTable) },
		"NewSQL(nil) with a bad Table":    func() (*store.Postgres, error) { return store.NewSQL(nil, store.Table{}) },
		"NewPgx(nil) with a nil option":   func() (*store.Postgres, error) { return store.NewPgx(nil, hostTable, nil) },
		"NewSQL(nil) with a schema quote": func() (*store.Postgres, error) { return store.NewSQL(nil, hostTable, store.WithSchema(`"`)) },
	}
	for _, name := range slices.Sorted(maps.Keys(nilDBs)) {
		t.Run(name, func(t *testing.T) {
			var err error
			call(t, func() { _, err = nilDBs[name]() })
			fails("store", store.ErrConfig)(t, err)
		})
	}
}

// trunc shortens long values in test names.
func trunc(s string) string {
	if len(s) > 20 {
		return s[:8] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// storeEnv is one Store over hostRows, and a rendering of everything it
// could have written.
type storeEnv struct {
	st    store.Store
	state func(t *testing.T) string
}

func pgStore(t *testing.T, driver string) storeEnv {
	t.Helper()
	db := pgtest.Open(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, hostDDL); err != nil {
		t.Fatal(err)
	}
	for _, r := range hostRows {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces VALUES ($1, NULLIF($2, ''), $3, NULLIF($4, ''))`, r.ID, r.Parent, r.Status, r.InstanceID); err != nil {
			t.Fatal(err)
		}
	}
	var (
		st  *store.Postgres
		err error
	)
	if driver == "pgx" {
		st, err = store.NewPgx(db.Pool, hostTable)
	} else {
		st, err = store.NewSQL(db.SQL, hostTable)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return storeEnv{st, func(t *testing.T) string {
		return dbState(t, db.Pool, "workspaces", "leakless_attempts", "leakless_leases")
	}}
}

func memStore(*testing.T) storeEnv {
	m := store.NewMemory(hostTable)
	for _, r := range hostRows {
		m.Put(r)
	}
	return storeEnv{m, func(t *testing.T) string {
		var b strings.Builder
		for _, r := range hostRows {
			got, ok := m.Get(r.ID)
			fmt.Fprintf(&b, "%v %+v\n", ok, got)
		}
		p, err := m.Pending(context.Background(), 100)
		fmt.Fprintf(&b, "pending %+v %v", p, err)
		return b.String()
	}}
}

// errOrNothing accepts a store error or, for inputs no row can match, a
// plain no-op: PostgreSQL refuses a NUL byte that memory merely fails to find.
func errOrNothing(pkg string) outcome {
	return func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			fails(pkg)(t, err)
		}
	}
}

func TestBadInputStoreMethods(t *testing.T) {
	held := liveID // the instance w3 still holds
	pendingLimit := func(limit int) func(context.Context, store.Store) error {
		return func(ctx context.Context, st store.Store) error {
			got, err := st.Pending(ctx, limit)
			if err == nil && len(got) != 0 {
				return fmt.Errorf("Pending(%d) returned %v, want none", limit, got)
			}
			return err
		}
	}
	removeTree := func(id string) func(context.Context, store.Store) error {
		return func(ctx context.Context, st store.Store) error {
			got, err := st.RemoveTree(ctx, id)
			if len(got) != 0 {
				return fmt.Errorf("RemoveTree(%q) returned %v", id, got)
			}
			return err
		}
	}
	reaped := func(p store.Pending) func(context.Context, store.Store) error {
		return func(ctx context.Context, st store.Store) error {
			ok, err := st.Reaped(ctx, p)
			if ok {
				return fmt.Errorf("Reaped(%+v) cleared a row", p)
			}
			return err
		}
	}
	failed := func(p store.Pending) func(context.Context, store.Store) error {
		return func(ctx context.Context, st store.Store) error {
			return st.Failed(ctx, p, errors.New("boom"), time.Hour)
		}
	}
	known := func(res, inst []string, wantProv, wantHeld []string) func(context.Context, store.Store) error {
		return func(ctx context.Context, st store.Store) error {
			k, err := st.Known(ctx, res, inst)
			if err != nil {
				return err
			}
			if k.Held == nil || k.Provisioning == nil {
				return fmt.Errorf("Known returned nil maps: %+v", k)
			}
			if got := slices.Sorted(maps.Keys(k.Provisioning)); !slices.Equal(got, wantProv) {
				return fmt.Errorf("Known.Provisioning = %q, want %q", got, wantProv)
			}
			if got := slices.Sorted(maps.Keys(k.Held)); !slices.Equal(got, wantHeld) {
				return fmt.Errorf("Known.Held = %q, want %q", got, wantHeld)
			}
			return nil
		}
	}
	cases := []struct {
		name string
		ctx  context.Context
		run  func(context.Context, store.Store) error
		want outcome
	}{
		{"Pending, limit 0", nil, pendingLimit(0), noError},
		{"Pending, limit -1", nil, pendingLimit(-1), noError},
		{"Pending, most negative limit", nil, pendingLimit(math.MinInt), noError},
		{"Pending, cancelled context", cancelled(), pendingLimit(10), fails("store", context.Canceled)},
		{"RemoveTree, empty id", nil, removeTree(""), fails("store", store.ErrNotFound)},
		{"RemoveTree, unknown id", nil, removeTree("w9"), fails("store", store.ErrNotFound)},
		{"RemoveTree, id differing in case", nil, removeTree("W1"), fails("store", store.ErrNotFound)},
		{"RemoveTree, hostile id", nil, removeTree(injection), fails("store", store.ErrNotFound)},
		{"RemoveTree, 64 KiB id", nil, removeTree(strings.Repeat("w", 64<<10)), fails("store", store.ErrNotFound)},
		{"RemoveTree, id with a NUL byte", nil, removeTree("w1\x00"), fails("store")},
		{"RemoveTree, id not UTF-8", nil, removeTree("w1\xff"), fails("store")},
		{"RemoveTree, cancelled context", cancelled(), removeTree("w1"), fails("store", context.Canceled)},
		{"Reaped, zero Pending", nil, reaped(store.Pending{}), noError},
		{"Reaped, another instance", nil, reaped(store.Pending{ResourceID: "w3", InstanceID: otherID}), noError},
		{"Reaped, no instance", nil, reaped(store.Pending{ResourceID: "w3"}), noError},
		{"Reaped, a live row", nil, reaped(store.Pending{ResourceID: "w1", InstanceID: "i-00000000000000001"}), noError},
		{"Reaped, hostile ids", nil, reaped(store.Pending{ResourceID: injection, InstanceID: injection}), noError},
		{"Reaped, NUL bytes", nil, reaped(store.Pending{ResourceID: "w3\x00", InstanceID: held + "\x00"}), errOrNothing("store")},
		{"Reaped, cancelled context", cancelled(), reaped(store.Pending{ResourceID: "w3", InstanceID: held}), fails("store", context.Canceled)},
		{"Failed, zero Pending", nil, failed(store.Pending{}), noError},
		{"Failed, unknown row", nil, failed(store.Pending{ResourceID: "w9", InstanceID: held}), noError},
		{"Failed, hostile ids", nil, failed(store.Pending{ResourceID: injection, InstanceID: injection}), noError},
		{"Failed, NUL bytes", nil, failed(store.Pending{ResourceID: "w3\x00", InstanceID: held}), errOrNothing("store")},
		{"Failed, cancelled context", cancelled(), failed(store.Pending{ResourceID: "w3", InstanceID: held}), fails("store", context.Canceled)},
		{"Known, nothing asked", nil, known(nil, nil, nil, nil), noError},
		{"Known, hostile, malformed and duplicate ids", nil, known(
			[]string{"w4", "w4", "W4", "w4\x00", "\xff", injection, "", long64},
			[]string{held, held, held + "\x00", "\xff", injection, ""},
			[]string{"W4", "w4"}, []string{held}), noError},
		{"Known, cancelled context", cancelled(), known([]string{"w4"}, []string{held}, nil, nil), fails("store", context.Canceled)},
	}
	backends := map[string]func(*testing.T) storeEnv{
		"pgx":    func(t *testing.T) storeEnv { return pgStore(t, "pgx") },
		"sql":    func(t *testing.T) storeEnv { return pgStore(t, "sql") },
		"memory": memStore,
	}
	for _, backend := range []string{"pgx", "sql", "memory"} {
		t.Run(backend, func(t *testing.T) {
			env := backends[backend](t)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					ctx := c.ctx
					if ctx == nil {
						ctx = context.Background()
					}
					before := env.state(t)
					var err error
					call(t, func() { err = c.run(ctx, env.st) })
					c.want(t, err)
					if after := env.state(t); after != before {
						t.Errorf("wrote something:\nbefore: %s\nafter:  %s", before, after)
					}
				})
			}
			t.Run("Failed keeps an unstorable error storable", func(t *testing.T) {
				ctx := context.Background()
				cause := errors.New("garbage \x00 from \xff the wire " + strings.Repeat("é", 2000))
				var err error
				call(t, func() {
					err = env.st.Failed(ctx, store.Pending{ResourceID: "w3", InstanceID: held}, cause, 0)
				})
				noError(t, err)
				got, err := env.st.Pending(ctx, 10)
				if err != nil || len(got) != 1 || got[0].Attempts != 1 {
					t.Fatalf("Pending after Failed: %+v, %v; want w3 with one attempt", got, err)
				}
				if last := got[0].LastError; !utf8.ValidString(last) || strings.Contains(last, "\x00") || !strings.HasPrefix(last, "garbage") || len(last) > 1024 {
					t.Errorf("LastError %q (%d bytes), want the cause, valid UTF-8 with no NUL, at most 1 KiB", trunc(last), len(last))
				}
			})
		})
	}
}

func TestBadInputStoreLease(t *testing.T) {
	env := pgStore(t, "pgx")
	st := env.st.(*store.Postgres)
	ctx := context.Background()
	cases := []struct {
		name   string
		ctx    context.Context
		lease  *store.Lease
		want   outcome
		leads  bool // Lead's answer when it succeeds
		writes bool
	}{
		{name: "empty name", lease: st.Lease("", time.Minute), want: fails("store", store.ErrConfig)},
		{name: "ttl 0", lease: st.Lease("sweeper", 0), want: fails("store", store.ErrConfig)},
		{name: "ttl -1h", lease: st.Lease("sweeper", -time.Hour), want: fails("store", store.ErrConfig)},
		{name: "ttl under a millisecond", lease: st.Lease("sweeper", time.Millisecond-1), want: fails("store", store.ErrConfig)},
		{name: "cancelled context", ctx: cancelled(), lease: st.Lease("sweeper", time.Minute), want: fails("store", context.Canceled)},
		{name: "hostile name is a value", lease: st.Lease(injection+long64, time.Minute), want: noError, leads: true, writes: true},
		{name: "longest ttl", lease: st.Lease("forever", math.MaxInt64), want: noError, leads: true, writes: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cctx := c.ctx
			if cctx == nil {
				cctx = ctx
			}
			before := env.state(t)
			var (
				ok   bool
				lerr error
			)
			call(t, func() { ok, lerr = c.lease.Lead(cctx) })
			c.want(t, lerr)
			if ok != c.leads {
				t.Errorf("Lead = %v, want %v", ok, c.leads)
			}
			if changed := env.state(t) != before; changed != c.writes {
				t.Errorf("Lead wrote: %v, want %v", changed, c.writes)
			}
			var rerr error
			call(t, func() { rerr = c.lease.Release(cctx) })
			c.want(t, rerr)
		})
	}
	t.Run("Release of a lease never held", func(t *testing.T) {
		before := env.state(t)
		noError(t, st.Lease("never-held", time.Minute).Release(ctx))
		if env.state(t) != before {
			t.Error("Release wrote a lease row")
		}
	})
}

// TestBadInputStoreDatabaseDown calls every method on a database that
// refuses connections and on one that never answers.
func TestBadInputStoreDatabaseDown(t *testing.T) {
	for _, server := range []string{"refused", "silent"} {
		var u string
		if server == "refused" {
			u = deadURL(t)
		} else {
			u = silentURL(t)
		}
		for _, driver := range []string{"pgx", "sql"} {
			var (
				st  *store.Postgres
				err error
			)
			if driver == "pgx" {
				st, err = store.NewPgx(downPool(t, u), hostTable)
			} else {
				st, err = store.NewSQL(downSQL(t, u), hostTable)
			}
			if err != nil {
				t.Fatalf("%s/%s: constructors do no I/O, yet: %v", server, driver, err)
			}
			lease := st.Lease("sweeper", time.Minute)
			p := store.Pending{ResourceID: "w3", InstanceID: liveID}
			calls := map[string]func(context.Context) error{
				"Migrate":    st.Migrate,
				"Pending":    func(ctx context.Context) error { _, err := st.Pending(ctx, 10); return err },
				"Reaped":     func(ctx context.Context) error { _, err := st.Reaped(ctx, p); return err },
				"Failed":     func(ctx context.Context) error { return st.Failed(ctx, p, errors.New("x"), 0) },
				"RemoveTree": func(ctx context.Context) error { _, err := st.RemoveTree(ctx, "w1"); return err },
				"Known":      func(ctx context.Context) error { _, err := st.Known(ctx, []string{"w4"}, []string{liveID}); return err },
				"Lead":       func(ctx context.Context) error { _, err := lease.Lead(ctx); return err },
				"Release":    lease.Release,
			}
			for _, name := range slices.Sorted(maps.Keys(calls)) {
				t.Run(server+"/"+driver+"/"+name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
					defer cancel()
					var err error
					within(t, 3*time.Second, func() { call(t, func() { err = calls[name](ctx) }) })
					fails("store")(t, err)
				})
			}
		}
	}
}

// =====================================================================
// sweeper
// =====================================================================

// inventoryFunc adapts a function to teardown.Inventory.
type inventoryFunc func(context.Context) ([]teardown.Instance, error)

func (f inventoryFunc) Owned(ctx context.Context) ([]teardown.Instance, error) { return f(ctx) }

func TestBadInputSweeperNew(t *testing.T) {
	st := store.NewMemory(hostTable)
	stopper := &countingStopper{}
	inv := inventoryFunc(func(context.Context) ([]teardown.Instance, error) { return nil, nil })
	cases := []struct {
		name    string
		st      store.Store
		stopper teardown.Stopper
		opts    []sweeper.Option
		want    outcome
	}{
		{"nil store", nil, stopper, nil, fails("sweeper", sweeper.ErrConfig)},
		{"nil stopper", st, nil, nil, fails("sweeper", sweeper.ErrConfig)},
		{"nil StopperFunc", st, teardown.StopperFunc(nil), nil, fails("sweeper", sweeper.ErrConfig)},
		{"interval 0", st, stopper, []sweeper.Option{sweeper.WithInterval(0)}, fails("sweeper", sweeper.ErrConfig)},
		{"interval -1s", st, stopper, []sweeper.Option{sweeper.WithInterval(-time.Second)}, fails("sweeper", sweeper.ErrConfig)},
		{"pass timeout 0", st, stopper, []sweeper.Option{sweeper.WithPassTimeout(0)}, fails("sweeper", sweeper.ErrConfig)},
		{"pass timeout -1s", st, stopper, []sweeper.Option{sweeper.WithPassTimeout(-time.Second)}, fails("sweeper", sweeper.ErrConfig)},
		{"batch size 0", st, stopper, []sweeper.Option{sweeper.WithBatchSize(0)}, fails("sweeper", sweeper.ErrConfig)},
		{"batch size -1", st, stopper, []sweeper.Option{sweeper.WithBatchSize(-1)}, fails("sweeper", sweeper.ErrConfig)},
		{"concurrency 0", st, stopper, []sweeper.Option{sweeper.WithConcurrency(0)}, fails("sweeper", sweeper.ErrConfig)},
		{"row backoff base 0", st, stopper, []sweeper.Option{sweeper.WithRowBackoff(0, time.Hour)}, fails("sweeper", sweeper.ErrConfig)},
		{"row backoff max 0", st, stopper, []sweeper.Option{sweeper.WithRowBackoff(time.Minute, 0)}, fails("sweeper", sweeper.ErrConfig)},
		{"row backoff negative", st, stopper, []sweeper.Option{sweeper.WithRowBackoff(-time.Minute, time.Hour)}, fails("sweeper", sweeper.ErrConfig)},
		{"row backoff max under base", st, stopper, []sweeper.Option{sweeper.WithRowBackoff(2*time.Hour, time.Hour)}, fails("sweeper", sweeper.ErrConfig)},
		{"nil events sink", st, stopper, []sweeper.Option{sweeper.WithEvents(nil)}, fails("sweeper", sweeper.ErrConfig)},
		{"nil logger", st, stopper, []sweeper.Option{sweeper.WithLogger(nil)}, fails("sweeper", sweeper.ErrConfig)},
		{"nil meter provider", st, stopper, []sweeper.Option{sweeper.WithMeterProvider(metric.MeterProvider(nil))}, fails("sweeper", sweeper.ErrConfig)},
		{"nil leader", st, stopper, []sweeper.Option{sweeper.WithLeader(nil)}, fails("sweeper", sweeper.ErrConfig)},
		{"nil row-gone inventory", st, stopper, []sweeper.Option{sweeper.WithRowGone(nil, sweeper.RowGone{})}, fails("sweeper", sweeper.ErrConfig)},
		{"row-gone MinAge -1", st, stopper, []sweeper.Option{sweeper.WithRowGone(inv, sweeper.RowGone{MinAge: -1})}, fails("sweeper", sweeper.ErrConfig)},
		{"row-gone ConfirmPasses -1", st, stopper, []sweeper.Option{sweeper.WithRowGone(inv, sweeper.RowGone{ConfirmPasses: -1})}, fails("sweeper", sweeper.ErrConfig)},
		{"row-gone MaxPerPass -1", st, stopper, []sweeper.Option{sweeper.WithRowGone(inv, sweeper.RowGone{MaxPerPass: -1})}, fails("sweeper", sweeper.ErrConfig)},
		{"row-gone MaxFraction NaN", st, stopper, []sweeper.Option{sweeper.WithRowGone(inv, sweeper.RowGone{MaxFraction: math.NaN()})}, fails("sweeper", sweeper.ErrConfig)},
		{"row-gone MaxFraction -0.1", st, stopper, []sweeper.Option{sweeper.WithRowGone(inv, sweeper.RowGone{MaxFraction: -0.1})}, fails("sweeper", sweeper.ErrConfig)},
		{"row-gone MaxFraction 1.1", st, stopper, []sweeper.Option{sweeper.WithRowGone(inv, sweeper.RowGone{MaxFraction: 1.1})}, fails("sweeper", sweeper.ErrConfig)},
		{"row-gone MaxFraction +Inf", st, stopper, []sweeper.Option{sweeper.WithRowGone(inv, sweeper.RowGone{MaxFraction: math.Inf(1)})}, fails("sweeper", sweeper.ErrConfig)},
		{"retry max attempts 0", st, stopper, []sweeper.Option{sweeper.WithRetry(teardown.WithMaxAttempts(0))}, fails("sweeper", sweeper.ErrConfig, teardown.ErrConfig)},
		{"retry negative backoff", st, stopper, []sweeper.Option{sweeper.WithRetry(teardown.WithBackoff(-1, 0))}, fails("sweeper", sweeper.ErrConfig, teardown.ErrConfig)},
		{"retry concurrency 0 overriding a good one", st, stopper, []sweeper.Option{sweeper.WithConcurrency(4), sweeper.WithRetry(teardown.WithConcurrency(0))}, fails("sweeper", sweeper.ErrConfig, teardown.ErrConfig)},
		{"nil option is skipped", st, stopper, []sweeper.Option{nil, sweeper.WithRetry(nil)}, noError},
		{"hostile resource tag is a map key", st, stopper, []sweeper.Option{sweeper.WithRowGone(inv, sweeper.RowGone{ResourceTag: injection})}, noError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var (
				sw  *sweeper.Sweeper
				err error
			)
			call(t, func() { sw, err = sweeper.New(c.st, c.stopper, c.opts...) })
			c.want(t, err)
			if (err == nil) != (sw != nil) {
				t.Errorf("returned sweeper %v with error %v", sw, err)
			}
			if n := len(stopper.seen()); n != 0 {
				t.Errorf("New called the stopper %d times", n)
			}
		})
	}
}

// TestBadInputSweeperPass runs one pass over a real table with the row w3
// removed but still holding an instance, against an EC2 endpoint that
// answers as each case says. However it fails, the pass clears no row whose
// instance EC2 did not really stop, and terminates nothing else.
func TestBadInputSweeperPass(t *testing.T) {
	old := time.Now().Add(-24 * time.Hour)
	fastRetry := sweeper.WithRetry(teardown.WithMaxAttempts(1))
	rowGone := func(inv teardown.Inventory) sweeper.Option {
		return sweeper.WithRowGone(inv, sweeper.RowGone{MinAge: time.Minute, ConfirmPasses: 1, MaxFraction: 1})
	}
	type env struct {
		stub *ec2Stub
		ec2  *awsec2.Client
	}
	cases := []struct {
		name       string
		ctx        context.Context
		db         string // "" (the real one), "refused" or "silent"
		noPending  bool   // clear w3's instance first
		ec2        func(*ec2Stub)
		opts       func(env) []sweeper.Option
		want       outcome // the pass's error; nil: not checked
		report     func(sweeper.Report) error
		terminates int // TerminateInstances requests expected
		events     []string
	}{
		{name: "cancelled context", ctx: cancelled(),
			ec2:  func(s *ec2Stub) { s.answer("TerminateInstances", 200, terminated(liveID)) },
			want: fails("sweeper", context.Canceled), report: counts(0, 0, 0)},
		{name: "store refuses connections", db: "refused",
			ec2:  func(s *ec2Stub) { s.answer("TerminateInstances", 200, terminated(liveID)) },
			want: fails("sweeper"), report: counts(0, 0, 0)},
		{name: "store never answers", db: "silent",
			ec2:  func(s *ec2Stub) { s.answer("TerminateInstances", 200, terminated(liveID)) },
			opts: func(env) []sweeper.Option { return []sweeper.Option{sweeper.WithPassTimeout(800 * time.Millisecond)} },
			want: fails("sweeper"), report: counts(0, 0, 0)},
		{name: "EC2 answers 500 and junk",
			ec2:    func(s *ec2Stub) { s.answer("TerminateInstances", 500, "junk") },
			report: counts(1, 0, 1), terminates: 1, events: []string{events.TypeReapFailed}},
		{name: "EC2 answers 403 UnauthorizedOperation",
			ec2:    func(s *ec2Stub) { s.answer("TerminateInstances", 403, ec2Error("UnauthorizedOperation", "no")) },
			report: counts(1, 0, 1), terminates: 1, events: []string{events.TypeReapFailed}},
		{name: "EC2 answers 200 and an empty body",
			ec2:    func(s *ec2Stub) { s.answer("TerminateInstances", 200, "") },
			report: counts(1, 0, 1), terminates: 1, events: []string{events.TypeReapFailed}},
		{name: "EC2 answers 200 and junk",
			ec2:    func(s *ec2Stub) { s.answer("TerminateInstances", 200, "junk") },
			report: counts(1, 0, 1), terminates: 1, events: []string{events.TypeReapFailed}},
		{name: "EC2 answers 200 naming no instance",
			ec2:    func(s *ec2Stub) { s.answer("TerminateInstances", 200, terminateNamesNone) },
			report: counts(1, 0, 1), terminates: 1, events: []string{events.TypeReapFailed}},
		{name: "EC2 says NotFound and DescribeInstances answers 200 and nothing",
			ec2: func(s *ec2Stub) {
				s.answer("TerminateInstances", 400, notFoundBody(liveID))
				s.answer("DescribeInstances", 200, "")
			},
			report: counts(1, 0, 1), terminates: 1, events: []string{events.TypeReapFailed}},
		{name: "EC2 never answers",
			ec2: func(s *ec2Stub) { s.hang("TerminateInstances") },
			opts: func(env) []sweeper.Option {
				return []sweeper.Option{sweeper.WithPassTimeout(time.Second), sweeper.WithRetry(
					teardown.WithAttemptTimeout(100*time.Millisecond), teardown.WithMaxAttempts(2), teardown.WithBackoff(0, 0))}
			},
			report: counts(1, 0, 1), terminates: 2, events: []string{events.TypeReapFailed}},
		{name: "row-gone inventory answers 500", noPending: true,
			ec2:  func(s *ec2Stub) { s.answer("DescribeInstances", 500, "junk") },
			opts: func(e env) []sweeper.Option { return []sweeper.Option{rowGone(e.ec2)} },
			want: fails("sweeper"), report: aborted(sweeper.AbortInventory), events: []string{events.TypeSweepAborted}},
		{name: "row-gone inventory answers 200 and junk", noPending: true,
			ec2:  func(s *ec2Stub) { s.answer("DescribeInstances", 200, "junk") },
			opts: func(e env) []sweeper.Option { return []sweeper.Option{rowGone(e.ec2)} },
			want: fails("sweeper"), report: aborted(sweeper.AbortInventory), events: []string{events.TypeSweepAborted}},
		// The pass's own deadline ended the listing, not the caller: a hung
		// inventory is a finding for the ledger, unlike a shutdown.
		{name: "row-gone inventory never answers", noPending: true,
			ec2: func(s *ec2Stub) { s.hang("DescribeInstances") },
			opts: func(e env) []sweeper.Option {
				return []sweeper.Option{rowGone(e.ec2), sweeper.WithPassTimeout(800 * time.Millisecond)}
			},
			want: fails("sweeper"), report: aborted(sweeper.AbortInventory), events: []string{events.TypeSweepAborted}},
		{name: "row-gone step of a cancelled pass is routine", noPending: true, ctx: cancelled(),
			ec2:  func(s *ec2Stub) { s.answer("DescribeInstances", 200, describeEmpty) },
			opts: func(e env) []sweeper.Option { return []sweeper.Option{rowGone(e.ec2)} },
			want: fails("sweeper", context.Canceled), report: aborted(sweeper.AbortCanceled)},
		{name: "row-gone inventory lists hostile and empty ids", noPending: true,
			ec2: func(s *ec2Stub) { s.answer("TerminateInstances", 200, terminated(liveID)) },
			opts: func(env) []sweeper.Option {
				return []sweeper.Option{rowGone(inventoryFunc(func(context.Context) ([]teardown.Instance, error) {
					return []teardown.Instance{
						{ID: injection, State: "running", LaunchedAt: old, Tags: ownerTags},
						{ID: "", State: "running", LaunchedAt: old, Tags: ownerTags},
						{ID: "i-0123abcd\x00", State: "running", LaunchedAt: old, Tags: ownerTags},
					}, nil
				}))}
			},
			// Both non-empty ids are candidates; neither is ever sent.
			report: func(r sweeper.Report) error {
				if r.RowGoneSeen != 2 || r.RowGoneTerminated != 0 {
					return fmt.Errorf("row-gone seen/terminated = %d/%d, want 2/0", r.RowGoneSeen, r.RowGoneTerminated)
				}
				return nil
			},
			events: []string{events.TypeRowGoneDetected, events.TypeRowGoneDetected, events.TypeReapFailed, events.TypeReapFailed}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := pgtest.Open(t)
			ctx := context.Background()
			if _, err := db.Pool.Exec(ctx, hostDDL); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces VALUES ('w3', NULL, 'removed', $1), ('w1', NULL, 'running', $2)`, liveID, otherID); err != nil {
				t.Fatal(err)
			}
			real, err := store.NewPgx(db.Pool, hostTable)
			if err != nil {
				t.Fatal(err)
			}
			if err := real.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if c.noPending {
				if _, err := db.Pool.Exec(ctx, `UPDATE workspaces SET instance_id = NULL WHERE id = 'w3'`); err != nil {
					t.Fatal(err)
				}
			}
			var st store.Store = real
			if c.db != "" {
				u := deadURL(t)
				if c.db == "silent" {
					u = silentURL(t)
				}
				if st, err = store.NewPgx(downPool(t, u), hostTable); err != nil {
					t.Fatal(err)
				}
			}
			stub := newEC2Stub(t)
			if c.ec2 != nil {
				c.ec2(stub)
			}
			cl, err := awsec2.New(stub.api(), awsec2.WithOwner(ownerTags))
			if err != nil {
				t.Fatal(err)
			}
			mem := events.NewMemory()
			o := []sweeper.Option{sweeper.WithEvents(mem), fastRetry, sweeper.WithPassTimeout(5 * time.Second)}
			if c.opts != nil {
				o = append(o, c.opts(env{stub, cl})...)
			}
			sw, err := sweeper.New(st, cl, o...)
			if err != nil {
				t.Fatal(err)
			}
			before := dbState(t, db.Pool, "workspaces")
			runCtx := c.ctx
			if runCtx == nil {
				runCtx = ctx
			}
			var rep sweeper.Report
			within(t, 4*time.Second, func() { call(t, func() { rep, err = sw.SweepOnce(runCtx) }) })
			if c.want != nil {
				c.want(t, err)
			}
			if c.report != nil {
				if rerr := c.report(rep); rerr != nil {
					t.Errorf("report %+v: %v (pass error: %v)", rep, rerr, err)
				}
			}
			if after := dbState(t, db.Pool, "workspaces"); after != before {
				t.Errorf("the host's table changed although no instance was stopped:\nbefore: %s\nafter:  %s", before, after)
			}
			if n := stub.callsOf("TerminateInstances"); n != c.terminates {
				t.Errorf("%d TerminateInstances requests, want %d", n, c.terminates)
			}
			var types []string
			for _, e := range mem.Events() {
				types = append(types, e.Type)
			}
			if !slices.Equal(types, c.events) {
				t.Errorf("events %q, want %q", types, c.events)
			}
		})
	}
}

// counts checks a Report's re-drive figures.
func counts(pending, reaped, failed int) func(sweeper.Report) error {
	return func(r sweeper.Report) error {
		if r.Pending != pending || r.Reaped != reaped || r.Failed != failed {
			return fmt.Errorf("pending/reaped/failed = %d/%d/%d, want %d/%d/%d", r.Pending, r.Reaped, r.Failed, pending, reaped, failed)
		}
		return nil
	}
}

// aborted checks that the row-gone step terminated nothing, for reason.
func aborted(reason string) func(sweeper.Report) error {
	return func(r sweeper.Report) error {
		if r.Aborted != reason || r.RowGoneTerminated != 0 {
			return fmt.Errorf("aborted %q with %d terminated, want %q with none", r.Aborted, r.RowGoneTerminated, reason)
		}
		return nil
	}
}

// TestBadInputSweeperRun runs the loop with a context that is already
// over, and with leaders that can never lead: it returns nil promptly and
// stops nothing.
func TestBadInputSweeperRun(t *testing.T) {
	deadStore, err := store.NewPgx(downPool(t, deadURL(t)), hostTable)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		st      store.Store // nil: a memory store holding a pending row
		options []sweeper.Option
	}{
		{name: "cancelled context", ctx: func() (context.Context, context.CancelFunc) { return cancelled(), func() {} }},
		{name: "leader's database refuses connections", options: []sweeper.Option{sweeper.WithLeader(deadStore.Lease("sweeper", 15*time.Second))}},
		{name: "leader with an empty lease name", options: []sweeper.Option{sweeper.WithLeader(deadStore.Lease("", 15*time.Second))}},
		{name: "leader with a zero ttl", options: []sweeper.Option{sweeper.WithLeader(deadStore.Lease("sweeper", 0))}},
		{name: "store refuses connections", st: deadStore},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := c.st
			mem := store.NewMemory(hostTable)
			mem.Put(store.Row{ID: "w3", Status: "removed", InstanceID: liveID})
			if st == nil {
				st = mem
			}
			stopper := &countingStopper{}
			sw, err := sweeper.New(st, stopper, append([]sweeper.Option{sweeper.WithInterval(time.Hour)}, c.options...)...)
			if err != nil {
				t.Fatal(err)
			}
			mk := c.ctx
			if mk == nil {
				mk = func() (context.Context, context.CancelFunc) {
					return context.WithTimeout(context.Background(), 300*time.Millisecond)
				}
			}
			ctx, cancel := mk()
			defer cancel()
			within(t, 3*time.Second, func() { call(t, func() { err = sw.Run(ctx) }) })
			noError(t, err)
			if got := stopper.seen(); len(got) != 0 {
				t.Errorf("stopped %q without leading or with a dead context", got)
			}
			if r, _ := mem.Get("w3"); r.InstanceID != liveID {
				t.Errorf("row w3 cleared: %+v", r)
			}
		})
	}
}

// =====================================================================
// fuzz targets
// =====================================================================

// rootElement is the name of body's first XML element, or "" when body
// has none before its first syntax error.
func rootElement(body []byte) string {
	d := xml.NewDecoder(strings.NewReader(string(body)))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

// permanentCodes are the EC2 error codes that may make a stop permanent.
var permanentCodes = []string{"UnauthorizedOperation", "AuthFailure", "OperationNotPermitted", "InvalidInstanceID.Malformed", "InvalidParameter"}

var liveStates = []string{"pending", "running", "stopping", "stopped"}

// FuzzGarbageEC2Response answers the real SDK with fuzzed bytes under a
// fuzzed HTTP status, in four places: the TerminateInstances answer to
// Stop (op 0), the DescribeInstances answer confirming a NotFound (op 1),
// the DescribeInstances answer to Owned (op 2), and the message of a
// NotFound answer to StopBatch (op 3). Whatever the bytes, nothing panics,
// every error names awsec2, and only EC2's own answer can mean success:
// a stop succeeds only on a TerminateInstances answer naming the instance,
// is "gone" only on a DescribeInstances answer, and is permanent only on
// an error code that says so; Owned lists only owned, live instances.
func FuzzGarbageEC2Response(f *testing.F) {
	f.Add(uint8(0), uint16(200), []byte(terminated(liveID)))
	f.Add(uint8(2), uint16(200), []byte(describeOne(liveID, "running", ownerTags)))
	stub := newEC2Stub(f)
	inf := math.Inf(1)
	cl, err := awsec2.New(stub.api(), awsec2.WithOwner(ownerTags),
		awsec2.WithRateLimit(inf, 1), awsec2.WithResourceRateLimit(inf, 1), awsec2.WithDescribeRateLimit(inf, 1))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, op uint8, rawStatus uint16, body []byte) {
		status := int(rawStatus)
		if status < 200 || status > 599 {
			status = 200 + status%400
		}
		ok2xx := status < 300
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stub.reset()
		named := func(err error) {
			t.Helper()
			if err != nil && !strings.HasPrefix(err.Error(), "awsec2: ") {
				t.Fatalf("error %q does not name awsec2", err)
			}
		}
		switch op % 4 {
		case 0:
			stub.answer("TerminateInstances", status, string(body))
			err := cl.Stop(ctx, liveID)
			named(err)
			if err == nil && !(ok2xx && rootElement(body) == "TerminateInstancesResponse" && strings.Contains(string(body), liveID)) {
				t.Fatalf("Stop succeeded on %d %q, which is not EC2 terminating %s", status, body, liveID)
			}
			if errors.Is(err, teardown.ErrGone) {
				t.Fatalf("Stop reported gone on %d %q with DescribeInstances failing: %v", status, body, err)
			}
			if teardown.IsPermanent(err) && !containsAny(string(body), permanentCodes) {
				t.Fatalf("Stop made %d %q permanent: %v", status, body, err)
			}
			if n := stub.callsOf("TerminateInstances"); n != 1 {
				t.Fatalf("%d TerminateInstances requests for one Stop", n)
			}
		case 1:
			stub.answer("TerminateInstances", 400, notFoundBody(liveID))
			stub.answer("DescribeInstances", status, string(body))
			err := cl.Stop(ctx, liveID)
			named(err)
			if err == nil {
				t.Fatalf("Stop succeeded although TerminateInstances failed (describe: %d %q)", status, body)
			}
			if errors.Is(err, teardown.ErrGone) && !(ok2xx && rootElement(body) == "DescribeInstancesResponse") {
				t.Fatalf("Stop reported gone on DescribeInstances %d %q, which is not EC2's answer: %v", status, body, err)
			}
			if teardown.IsPermanent(err) {
				t.Fatalf("a NotFound made permanent by DescribeInstances %d %q: %v", status, body, err)
			}
			if n := stub.callsOf("DescribeInstances"); n < 1 {
				t.Fatalf("NotFound not confirmed with DescribeInstances")
			}
		case 2:
			stub.answer("DescribeInstances", status, string(body))
			got, err := cl.Owned(ctx)
			named(err)
			if err == nil && !(ok2xx && rootElement(body) == "DescribeInstancesResponse") {
				t.Fatalf("Owned succeeded on %d %q, which is not EC2's answer", status, body)
			}
			for _, in := range got {
				if in.ID == "" || in.Tags["leakless:owner"] != "badinput" || !slices.Contains(liveStates, in.State) {
					t.Fatalf("Owned listed %+v from %q: not an owned, live instance", in, body)
				}
			}
		case 3:
			stub.answer("TerminateInstances", 400, ec2Error("InvalidInstanceID.NotFound", string(body)))
			stub.answer("DescribeInstances", 200, describeEmpty)
			res := cl.StopBatch(ctx, []string{liveID, otherID})
			if len(res) != 2 {
				t.Fatalf("StopBatch returned %v, want one result per id", res)
			}
			for id, err := range res {
				named(err)
				if !errors.Is(err, teardown.ErrNotFound) || errors.Is(err, teardown.ErrGone) {
					t.Fatalf("%s: %v, want not found (not gone): EC2 says NotFound and describes nothing", id, err)
				}
			}
			if n := stub.callsOf("TerminateInstances"); n > 3 {
				t.Fatalf("%d TerminateInstances requests to settle two ids", n)
			}
		}
	})
}

func containsAny(s string, subs []string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

// The identifier rule every table and column name follows.
var identRule = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func plainIdent(s string) bool { return len(s) <= 63 && identRule.MatchString(s) }

func plainTable(s string) bool {
	schema, rel, ok := strings.Cut(s, ".")
	if !ok {
		return plainIdent(s)
	}
	return plainIdent(schema) && plainIdent(rel)
}

// quoted is a valid name as the SQL must spell it.
func quoted(name string) string { return `"` + strings.ReplaceAll(name, ".", `"."`) + `"` }

// FuzzIdentifier hands fuzzed names to every identifier the events and
// store constructors take: each is accepted iff it is a plain identifier
// (a table optionally schema-qualified), and an accepted one appears in
// the generated SQL only double-quoted.
func FuzzIdentifier(f *testing.F) {
	db := downSQL(f, deadURL(f)) // constructors do no I/O
	f.Fuzz(func(t *testing.T, name string) {
		check := func(what string, err error, want bool, pkg string, sentinel error) {
			t.Helper()
			switch {
			case want && err != nil:
				t.Fatalf("%s(%q) rejected a plain identifier: %v", what, name, err)
			case !want && err == nil:
				t.Fatalf("%s(%q) accepted a name that is not a plain identifier", what, name)
			case err != nil && (!errors.Is(err, sentinel) || !strings.HasPrefix(err.Error(), pkg+": ")):
				t.Fatalf("%s(%q): %q does not wrap %v", what, name, err, sentinel)
			}
		}
		sqlOf := func(what, schemaSQL string) {
			t.Helper()
			if !strings.Contains(schemaSQL, quoted(name)) {
				t.Fatalf("%s(%q): the SQL does not spell it %s:\n%s", what, name, quoted(name), schemaSQL)
			}
		}

		sink, err := events.NewSQL(db, events.WithTable(name))
		check("events.WithTable", err, plainTable(name), "events", events.ErrConfig)
		if err == nil {
			sqlOf("events.WithTable", sink.SchemaSQL())
		}
		sink, err = events.NewSQL(db, events.WithSubjectColumn(name))
		check("events.WithSubjectColumn", err, plainIdent(name), "events", events.ErrConfig)
		if err == nil {
			sqlOf("events.WithSubjectColumn", sink.SchemaSQL())
		}

		tb := store.Table{Name: "host_t", ID: "id_c", Status: "status_c", InstanceID: "instance_c", Parent: "parent_c", Removed: "removed"}
		taken := []string{tb.ID, tb.Status, tb.InstanceID, tb.Parent}
		st, err := store.NewSQL(db, store.Table{Name: name, ID: tb.ID, Status: tb.Status, InstanceID: tb.InstanceID, Parent: tb.Parent, Removed: tb.Removed})
		check("store Table.Name", err, plainTable(name), "store", store.ErrConfig)
		if err == nil {
			sqlOf("store Table.Name", st.SchemaSQL())
		}
		if !slices.Contains(taken, name) { // a name already used by another column is another rule
			for field, set := range map[string]func(*store.Table){
				"ID":         func(t *store.Table) { t.ID = name },
				"Status":     func(t *store.Table) { t.Status = name },
				"InstanceID": func(t *store.Table) { t.InstanceID = name },
				"Parent":     func(t *store.Table) { t.Parent = name },
			} {
				c := tb
				set(&c)
				_, err := store.NewSQL(db, c)
				check("store Table."+field, err, plainIdent(name) || (field == "Parent" && name == ""), "store", store.ErrConfig)
			}
		}
		st, err = store.NewSQL(db, tb, store.WithSchema(name))
		check("store.WithSchema", err, name == "" || plainIdent(name), "store", store.ErrConfig)
		if err == nil && name != "" {
			sqlOf("store.WithSchema", st.SchemaSQL())
		}
	})
}

// FuzzRemovedStatus hands a fuzzed terminal status to a store over a real
// table. The status is spliced into SQL as a literal, so it is accepted iff
// PostgreSQL text can hold it (non-empty, at most 255 bytes, UTF-8, no NUL),
// and an accepted one must match exactly the rows holding that status:
// Pending finds the removed row and not one whose status merely starts the
// same, RemoveTree writes the status byte for byte, and a live row is
// provisioning until it is removed.
func FuzzRemovedStatus(f *testing.F) {
	db := pgtest.Open(f)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, hostDDL); err != nil {
		f.Fatal(err)
	}
	base, err := store.NewPgx(db.Pool, hostTable)
	if err != nil {
		f.Fatal(err)
	}
	if err := base.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, removed string) {
		tb := hostTable
		tb.Removed = removed
		st, err := store.NewPgx(db.Pool, tb)
		storable := removed != "" && len(removed) <= 255 && utf8.ValidString(removed) && !strings.Contains(removed, "\x00")
		if !storable {
			if err == nil || !errors.Is(err, store.ErrConfig) || !strings.HasPrefix(err.Error(), "store: ") {
				t.Fatalf("Removed %q: %v, want an error wrapping store.ErrConfig", removed, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Removed %q rejected: %v", removed, err)
		}
		live := "live"
		if removed == live {
			live = "running"
		}
		if _, err := db.Pool.Exec(ctx, `DELETE FROM workspaces`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Pool.Exec(ctx, `INSERT INTO workspaces VALUES
				('a', NULL, $1, $2),
				('b', NULL, $1 || 'x', $3),
				('c', NULL, $4, NULL),
				('d', 'c', $4, 'i-0000000000000000d')`, removed, liveID, otherID, live); err != nil {
			t.Fatal(err)
		}
		pending, err := st.Pending(ctx, 10)
		if err != nil {
			t.Fatalf("Pending with Removed %q: %v", removed, err)
		}
		if len(pending) != 1 || pending[0].ResourceID != "a" || pending[0].InstanceID != liveID {
			t.Fatalf("Pending with Removed %q = %+v, want only row a", removed, pending)
		}
		k, err := st.Known(ctx, []string{"c"}, nil)
		if err != nil || !k.Provisioning["c"] {
			t.Fatalf("Known before removal with Removed %q: %+v, %v; want c provisioning", removed, k, err)
		}
		held, err := st.RemoveTree(ctx, "c")
		if err != nil || len(held) != 1 || held[0].ResourceID != "d" {
			t.Fatalf("RemoveTree(c) with Removed %q: %+v, %v; want d", removed, held, err)
		}
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM workspaces WHERE id IN ('c', 'd') AND status = $1`, removed).Scan(&n); err != nil || n != 2 {
			t.Fatalf("RemoveTree wrote status %q to %d rows (%v), want 2", removed, n, err)
		}
		if k, err := st.Known(ctx, []string{"c"}, nil); err != nil || k.Provisioning["c"] {
			t.Fatalf("Known after removal with Removed %q: %+v, %v; want c not provisioning", removed, k, err)
		}
	})
}
