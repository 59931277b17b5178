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
	long64     = strings.Repeat("a", 64)                // one byte past PostgreSQL's identifier limit
	long63     = strings.Repeat("b", 63)                // exactly at it
	injection  = `x"; DROP TABLE workspaces; --`        // quote, semicolon, comment
	quoteSemi  = `it's; gone`                           // a value that must travel as a literal
	liveID     = "i-0123456789abcdef0"                  // a well-formed instance id
	otherID    = "i-0fedcba987654321f"                  // another
	unknownID  = "i-00000000000000000"                  // well-formed, never launched
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

// fakeState renders every instance of srv and its call counts.
func fakeState(srv *ec2fake.Server) string {
	var b strings.Builder
	for _, in := range srv.Instances() {
		fmt.Fprintf(&b, "%s %s protected=%v tags=%v\n", in.ID, in.State, in.Protected, in.Tags)
	}
	for _, a := range []string{"TerminateInstances", "StopInstances", "DescribeInstances", "RunInstances"} {
		fmt.Fprintf(&b, "%s=%d ", a, srv.Calls(a))
	}
	return b.String()
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
	hung := teardown.StopperFunc(func(ctx context.Context, string) error {
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
