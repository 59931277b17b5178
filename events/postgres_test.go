package events_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/pgtest"
)

// driver is one way of reaching Postgres. Every test in this file runs
// against both, so the pgx and database/sql variants are held to one
// specification.
type driver struct {
	name string
	// sink builds a sink on db's schema.
	sink func(t testing.TB, db *pgtest.DB, opts ...events.Option) *events.Postgres
	// begin opens a transaction on db, returned as EmitTx takes it.
	begin func(t testing.TB, db *pgtest.DB) tx
	// dial builds a sink on an arbitrary server URL, closed when t ends.
	dial func(t testing.TB, url string, opts ...events.Option) *events.Postgres
}

// tx is a transaction of either driver.
type tx struct {
	handle   any // pgx.Tx or *sql.Tx
	exec     func(query string, args ...any) error
	commit   func() error
	rollback func() error
}

var drivers = []driver{
	{
		name: "pgx",
		sink: func(t testing.TB, db *pgtest.DB, opts ...events.Option) *events.Postgres {
			t.Helper()
			s, err := events.NewPgx(db.Pool, opts...)
			if err != nil {
				t.Fatalf("NewPgx: %v", err)
			}
			return s
		},
		begin: func(t testing.TB, db *pgtest.DB) tx {
			t.Helper()
			ctx := context.Background()
			x, err := db.Pool.Begin(ctx)
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			t.Cleanup(func() { _ = x.Rollback(ctx) })
			return tx{
				handle:   x,
				exec:     func(q string, args ...any) error { _, err := x.Exec(ctx, q, args...); return err },
				commit:   func() error { return x.Commit(ctx) },
				rollback: func() error { return x.Rollback(ctx) },
			}
		},
		dial: func(t testing.TB, url string, opts ...events.Option) *events.Postgres {
			t.Helper()
			pool, err := pgxpool.New(context.Background(), url)
			if err != nil {
				t.Fatalf("pgxpool.New: %v", err)
			}
			t.Cleanup(pool.Close)
			s, err := events.NewPgx(pool, opts...)
			if err != nil {
				t.Fatalf("NewPgx: %v", err)
			}
			return s
		},
	},
	{
		name: "sql",
		sink: func(t testing.TB, db *pgtest.DB, opts ...events.Option) *events.Postgres {
			t.Helper()
			s, err := events.NewSQL(db.SQL, opts...)
			if err != nil {
				t.Fatalf("NewSQL: %v", err)
			}
			return s
		},
		begin: func(t testing.TB, db *pgtest.DB) tx {
			t.Helper()
			ctx := context.Background()
			x, err := db.SQL.BeginTx(ctx, nil)
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			t.Cleanup(func() { _ = x.Rollback() })
			return tx{
				handle:   x,
				exec:     func(q string, args ...any) error { _, err := x.ExecContext(ctx, q, args...); return err },
				commit:   x.Commit,
				rollback: x.Rollback,
			}
		},
		dial: func(t testing.TB, url string, opts ...events.Option) *events.Postgres {
			t.Helper()
			cfg, err := pgx.ParseConfig(url)
			if err != nil {
				t.Fatalf("parse url: %v", err)
			}
			db := stdlib.OpenDB(*cfg)
			t.Cleanup(func() { _ = db.Close() })
			s, err := events.NewSQL(db, opts...)
			if err != nil {
				t.Fatalf("NewSQL: %v", err)
			}
			return s
		},
	},
}

// forEachDriver runs test once per driver, in parallel subtests.
func forEachDriver(t *testing.T, test func(t *testing.T, d driver)) {
	t.Helper()
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			test(t, d)
		})
	}
}

// migrated returns a sink on a fresh schema with its table created.
func migrated(t *testing.T, d driver, opts ...events.Option) (*events.Postgres, *pgtest.DB) {
	t.Helper()
	db := pgtest.Open(t)
	s := d.sink(t, db, opts...)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s, db
}

func list(t *testing.T, s *events.Postgres, f events.Filter) []events.Event {
	t.Helper()
	got, err := s.List(context.Background(), f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	return got
}

func count(t *testing.T, db *pgtest.DB, table string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// jsonOf is the canonical text of a payload: encoding/json's, keys sorted.
func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func TestEmitWithCancelledContextPersists(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, _ := migrated(t, d)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		e := events.Event{Type: events.TypeRetryExhausted, Subject: "ws-1", Payload: map[string]any{"attempts": 3}, At: t0}
		if err := s.Emit(ctx, e); err != nil {
			t.Fatalf("Emit on a cancelled context = %v; want nil (the write is detached from cancellation)", err)
		}
		got := list(t, s, events.Filter{})
		if len(got) != 1 {
			t.Fatalf("List returned %d events; want 1", len(got))
		}
		if got[0].Type != e.Type || got[0].Subject != "ws-1" || !got[0].At.Equal(t0) || jsonOf(t, got[0].Payload) != `{"attempts":3}` {
			t.Errorf("List = %+v; want %+v", got[0], e)
		}
	})
}

func TestEmitWithExpiredDeadlinePersists(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, _ := migrated(t, d)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if err := s.Emit(ctx, events.Event{Type: "t", Subject: "s"}); err != nil {
			t.Fatalf("Emit past its deadline = %v; want nil", err)
		}
		if got := list(t, s, events.Filter{}); len(got) != 1 {
			t.Fatalf("List returned %d events; want 1", len(got))
		}
	})
}

// blackhole accepts TCP connections and never answers: a server that hangs.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return fmt.Sprintf("postgres://postgres@%s/test?sslmode=disable&connect_timeout=0", l.Addr())
}

// closedPort is a 127.0.0.1 URL where nothing listens: a stopped server.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return fmt.Sprintf("postgres://postgres@%s/test?sslmode=disable", addr)
}

// A database that refuses connections may be restarting: Emit keeps
// trying for its whole write timeout, then reports both the refusal and
// the deadline.
func TestEmitAgainstStoppedDatabaseTriesForTheWriteTimeout(t *testing.T) {
	const timeout = 700 * time.Millisecond
	forEachDriver(t, func(t *testing.T, d driver) {
		s := d.dial(t, closedPort(t), events.WithWriteTimeout(timeout))
		start := time.Now()
		err := s.Emit(context.Background(), events.Event{Type: "t"})
		took := time.Since(start)
		if err == nil {
			t.Fatal("Emit against a stopped server = nil; want an error")
		}
		if !strings.HasPrefix(err.Error(), "events: emit") || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "refused") {
			t.Errorf("error %q; want an events error naming the refusal and wrapping context.DeadlineExceeded", err)
		}
		if took < timeout-50*time.Millisecond || took > timeout+time.Second {
			t.Errorf("Emit gave up after %v; want about the %v write timeout", took, timeout)
		}
	})
}

func TestEmitAgainstHungDatabaseReturnsWithinWriteTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	forEachDriver(t, func(t *testing.T, d driver) {
		s := d.dial(t, blackhole(t), events.WithWriteTimeout(timeout))
		// Already cancelled: a sink that used this context would return at
		// once with context.Canceled instead of trying for the write timeout.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		err := s.Emit(ctx, events.Event{Type: "t"})
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Emit against a server that never answers = %v; want an error wrapping context.DeadlineExceeded", err)
		}
		if took < timeout || took > timeout+2*time.Second {
			t.Errorf("Emit returned after %v; want about the %v write timeout", took, timeout)
		}
		// EmitBatch is bounded the same way.
		start = time.Now()
		err = s.EmitBatch(ctx, []events.Event{{Type: "t"}, {Type: "u"}})
		if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > timeout+2*time.Second {
			t.Errorf("EmitBatch = %v after %v; want context.DeadlineExceeded after about %v", err, took, timeout)
		}
	})
}

func TestEmitTx(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, db := migrated(t, d)
		ctx := context.Background()
		if _, err := db.Pool.Exec(ctx, `CREATE TABLE workspaces (id text PRIMARY KEY, status text)`); err != nil {
			t.Fatal(err)
		}

		rolledBack := d.begin(t, db)
		if err := rolledBack.exec(`INSERT INTO workspaces VALUES ('ws-1', 'removed')`); err != nil {
			t.Fatal(err)
		}
		if err := s.EmitTx(ctx, rolledBack.handle, events.Event{Type: "rolled_back", Subject: "ws-1"}); err != nil {
			t.Fatalf("EmitTx: %v", err)
		}
		if err := rolledBack.rollback(); err != nil {
			t.Fatal(err)
		}
		if got := list(t, s, events.Filter{}); len(got) != 0 {
			t.Fatalf("after rollback List = %+v; want no events", got)
		}

		committed := d.begin(t, db)
		if err := committed.exec(`INSERT INTO workspaces VALUES ('ws-2', 'removed')`); err != nil {
			t.Fatal(err)
		}
		if err := s.EmitTx(ctx, committed.handle, events.Event{Type: "committed", Subject: "ws-2", Payload: map[string]any{"k": "v"}}); err != nil {
			t.Fatalf("EmitTx: %v", err)
		}
		// Not visible outside the transaction until it commits.
		if got := list(t, s, events.Filter{}); len(got) != 0 {
			t.Fatalf("before commit List = %+v; want no events", got)
		}
		if err := committed.commit(); err != nil {
			t.Fatal(err)
		}
		got := list(t, s, events.Filter{})
		if len(got) != 1 || got[0].Type != "committed" || got[0].Subject != "ws-2" || jsonOf(t, got[0].Payload) != `{"k":"v"}` {
			t.Fatalf("after commit List = %+v; want exactly the committed event", got)
		}
		if n := count(t, db, "workspaces"); n != 1 {
			t.Errorf("workspaces has %d rows; want 1 (the committed one)", n)
		}
	})
}

func TestEmitTxAcceptsEitherDriversTransaction(t *testing.T) {
	// A sink built on database/sql takes a pgx.Tx and the other way round:
	// the transaction decides where the row goes.
	db := pgtest.Open(t)
	ctx := context.Background()
	viaSQL := drivers[1].sink(t, db)
	if err := viaSQL.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	viaPgx := drivers[0].sink(t, db)
	for _, c := range []struct {
		sink *events.Postgres
		tx   tx
	}{
		{viaSQL, drivers[0].begin(t, db)},
		{viaPgx, drivers[1].begin(t, db)},
	} {
		if err := c.sink.EmitTx(ctx, c.tx.handle, events.Event{Type: fmt.Sprintf("%T", c.tx.handle)}); err != nil {
			t.Fatalf("EmitTx(%T): %v", c.tx.handle, err)
		}
		if err := c.tx.commit(); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, db, events.DefaultTable); n != 2 {
		t.Errorf("%d rows; want 2", n)
	}
}

func TestEmitTxRejectsOtherTypes(t *testing.T) {
	s, err := events.NewSQL(&sql.DB{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range []any{nil, (*sql.Tx)(nil), &sql.DB{}, "tx"} {
		if err := s.EmitTx(context.Background(), tx, events.Event{Type: "t"}); !errors.Is(err, events.ErrUnsupportedTx) {
			t.Errorf("EmitTx(%T) = %v; want an error wrapping ErrUnsupportedTx", tx, err)
		}
	}
}

// batchPayload is a payload that exercises JSON: unicode, escapes, HTML
// characters, nesting, 64-bit integers, fractions, booleans and null.
func batchPayload(i int) map[string]any {
	return map[string]any{
		"i":      i,
		"big":    int64(math.MaxInt64 - i),
		"frac":   float64(i) / 8,
		"name":   fmt.Sprintf("wörkspace-%d <&> \"quoted\" \\ \t 🚀", i),
		"nested": map[string]any{"ok": i%2 == 0, "none": nil, "list": []any{i, "x", 2.5, []any{}}},
		"empty":  map[string]any{},
	}
}

func TestEmitBatchRoundTrip(t *testing.T) {
	const n = 10_000
	forEachDriver(t, func(t *testing.T, d driver) {
		s, _ := migrated(t, d)
		batch := make([]events.Event, n)
		for i := range batch {
			batch[i] = events.Event{
				Type:    []string{events.TypeReaped, events.TypeReapFailed}[i%2],
				Subject: fmt.Sprintf("ws-%05d", i),
				Payload: batchPayload(i),
				At:      t0.Add(time.Duration(i) * time.Millisecond),
			}
		}
		if err := s.EmitBatch(context.Background(), batch); err != nil {
			t.Fatalf("EmitBatch of %d: %v", n, err)
		}
		got := list(t, s, events.Filter{})
		if len(got) != n {
			t.Fatalf("List returned %d events; want %d", len(got), n)
		}
		for i, g := range got {
			want := batch[n-1-i] // newest first
			if g.Type != want.Type || g.Subject != want.Subject || !g.At.Equal(want.At) {
				t.Fatalf("event %d = {%s %s %v}; want {%s %s %v}", i, g.Type, g.Subject, g.At, want.Type, want.Subject, want.At)
			}
			if gj, wj := jsonOf(t, g.Payload), jsonOf(t, want.Payload); gj != wj {
				t.Fatalf("payload of %s round-tripped as\n%s\nwant\n%s", want.Subject, gj, wj)
			}
		}
	})
}

func TestEmitBatchStampsZeroTimesAndKeepsOrder(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, _ := migrated(t, d)
		before := time.Now().Truncate(time.Microsecond)
		if err := s.EmitBatch(context.Background(), []events.Event{{Type: "first"}, {Type: "second"}, {Type: "third", At: t0}}); err != nil {
			t.Fatal(err)
		}
		got := list(t, s, events.Filter{})
		var types []string
		for _, e := range got {
			types = append(types, e.Type)
		}
		if strings.Join(types, ",") != "second,first,third" {
			t.Fatalf("List order = %v; want second,first,third (same stamp: latest inserted first; then the old one)", types)
		}
		if !got[0].At.Equal(got[1].At) || got[0].At.Before(before) {
			t.Errorf("zero times stamped %v and %v; want one stamp, not before %v", got[0].At, got[1].At, before)
		}
		if len(got[0].Payload) != 0 || got[0].Payload == nil {
			t.Errorf("nil payload listed as %#v; want an empty map", got[0].Payload)
		}
		if err := s.EmitBatch(context.Background(), nil); err != nil {
			t.Errorf("EmitBatch(nil) = %v; want nil", err)
		}
	})
}

func TestUnmarshallablePayloadWritesNothing(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, db := migrated(t, d)
		ctx := context.Background()
		bad := events.Event{Type: "bad", Payload: map[string]any{"ch": make(chan int)}}
		if err := s.Emit(ctx, bad); !errors.Is(err, events.ErrPayload) {
			t.Errorf("Emit = %v; want an error wrapping ErrPayload", err)
		}
		nan := events.Event{Type: "nan", Payload: map[string]any{"x": math.NaN()}}
		x := d.begin(t, db)
		if err := s.EmitTx(ctx, x.handle, nan); !errors.Is(err, events.ErrPayload) {
			t.Errorf("EmitTx = %v; want an error wrapping ErrPayload", err)
		}
		if err := x.commit(); err != nil {
			t.Fatalf("commit after a rejected EmitTx: %v (the transaction should be untouched)", err)
		}
		batch := []events.Event{{Type: "good"}, {Type: "good"}, bad}
		err := s.EmitBatch(ctx, batch)
		if !errors.Is(err, events.ErrPayload) || !strings.Contains(err.Error(), "batch event 2") {
			t.Errorf("EmitBatch = %v; want an error wrapping ErrPayload naming event 2", err)
		}
		if n := count(t, db, events.DefaultTable); n != 0 {
			t.Errorf("%d rows written; want 0: a bad payload writes nothing", n)
		}
	})
}

func TestList(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, _ := migrated(t, d)
		ctx := context.Background()
		all := []events.Event{
			{Type: "a", Subject: "x", At: t0},
			{Type: "b", Subject: "x", At: t0.Add(1 * time.Minute)},
			{Type: "a", Subject: "y", At: t0.Add(2 * time.Minute)},
			{Type: "a", Subject: "", At: t0.Add(3 * time.Minute)},
			{Type: "b", Subject: "y", At: t0.Add(4 * time.Minute)},
		}
		for _, e := range all {
			if err := s.Emit(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name string
			f    events.Filter
			want string // subjects@minutes, newest first
		}{
			{"all, newest first", events.Filter{}, "y@4 @3 y@2 x@1 x@0"},
			{"type", events.Filter{Type: "a"}, "@3 y@2 x@0"},
			{"subject", events.Filter{Subject: "x"}, "x@1 x@0"},
			{"type and subject", events.Filter{Type: "b", Subject: "y"}, "y@4"},
			{"since is inclusive", events.Filter{Since: t0.Add(2 * time.Minute)}, "y@4 @3 y@2"},
			{"until is exclusive", events.Filter{Until: t0.Add(2 * time.Minute)}, "x@1 x@0"},
			{"range", events.Filter{Since: t0.Add(time.Minute), Until: t0.Add(4 * time.Minute)}, "@3 y@2 x@1"},
			{"limit keeps the newest", events.Filter{Limit: 2}, "y@4 @3"},
			{"limit with type", events.Filter{Type: "a", Limit: 1}, "@3"},
			{"no match", events.Filter{Type: "c"}, ""},
		}
		for _, tt := range tests {
			var got []string
			for _, e := range list(t, s, tt.f) {
				got = append(got, fmt.Sprintf("%s@%d", e.Subject, int(e.At.Sub(t0)/time.Minute)))
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("%s: List(%+v) = %q; want %q", tt.name, tt.f, strings.Join(got, " "), tt.want)
			}
		}
	})
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		db := pgtest.Open(t)
		s := d.sink(t, db, events.WithTable("ledger"))
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() { errs <- s.Migrate(ctx) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Migrate: %v", err)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		var indexes int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'ledger'`, db.Schema).Scan(&indexes); err != nil {
			t.Fatal(err)
		}
		if indexes != 4 {
			t.Errorf("ledger has %d indexes; want 4 (primary key, type, subject, key)", indexes)
		}
	})
}

func TestSchemaSQLAppliedByHand(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	s := drivers[0].sink(t, db, events.WithTable("audit.ledger"), events.WithSubjectColumn("resource_id"))
	if _, err := db.Pool.Exec(ctx, `CREATE SCHEMA audit`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Pool.Exec(context.Background(), `DROP SCHEMA audit CASCADE`) })
	ddl := s.SchemaSQL()
	for _, want := range []string{`CREATE TABLE IF NOT EXISTS "audit"."ledger"`, `"resource_id" text`, `"ledger_type_created_at_idx"`} {
		if !strings.Contains(ddl, want) {
			t.Errorf("SchemaSQL() lacks %q:\n%s", want, ddl)
		}
	}
	for range 2 { // a migration tool may run it again
		if _, err := db.Pool.Exec(ctx, ddl); err != nil {
			t.Fatalf("applying SchemaSQL(): %v", err)
		}
	}
	if err := s.Emit(ctx, events.Event{Type: "t", Subject: "r"}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "audit.ledger"); n != 1 {
		t.Errorf("audit.ledger has %d rows; want 1", n)
	}
}

func TestLongTableNameKeepsIndexNamesDistinct(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	name := strings.Repeat("t", 63)
	s := drivers[0].sink(t, db, events.WithTable(name))
	for range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate with a 63-byte table name: %v", err)
		}
	}
	var indexes int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`, db.Schema, name).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != 4 {
		t.Errorf("%d indexes; want 4: derived index names must stay distinct when cut to 63 bytes", indexes)
	}
}

// hostTable is the shape of a host's own events table: subject in a uuid
// column named workspace_id, extra columns the sink leaves alone.
const hostTable = `CREATE TABLE workspace_events (
	id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	event_type   text NOT NULL,
	workspace_id uuid,
	agent_id     uuid,
	target_id    text,
	payload      jsonb NOT NULL DEFAULT '{}',
	created_at   timestamptz NOT NULL DEFAULT now()
)`

func TestHostShapedTable(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		db := pgtest.Open(t)
		ctx := context.Background()
		if _, err := db.Pool.Exec(ctx, hostTable); err != nil {
			t.Fatal(err)
		}
		s := d.sink(t, db, events.WithTable(db.Schema+".workspace_events"), events.WithSubjectColumn("workspace_id"))
		ws1 := "0b6f4c2e-1f1a-4d57-9d43-6e2f7c1a8b01"
		ws2 := "7a1d3e9c-5b2f-4e8a-a1c4-2d6f8e0b9c12"

		if err := s.Emit(ctx, events.Event{Type: "emit", Subject: ws1, At: t0}); err != nil {
			t.Fatalf("Emit: %v", err)
		}
		x := d.begin(t, db)
		if err := s.EmitTx(ctx, x.handle, events.Event{Type: "emit_tx", Subject: ws2, At: t0.Add(time.Second)}); err != nil {
			t.Fatalf("EmitTx: %v", err)
		}
		if err := x.commit(); err != nil {
			t.Fatal(err)
		}
		batch := []events.Event{
			{Type: "batch", Subject: ws1, At: t0.Add(2 * time.Second), Payload: map[string]any{"n": 1}},
			{Type: "batch", Subject: "", At: t0.Add(3 * time.Second)}, // NULL workspace_id
		}
		if err := s.EmitBatch(ctx, batch); err != nil {
			t.Fatalf("EmitBatch: %v", err)
		}

		var got []string
		for _, e := range list(t, s, events.Filter{Subject: ws1}) {
			got = append(got, e.Type+"/"+e.Subject)
		}
		if want := "batch/" + ws1 + " emit/" + ws1; strings.Join(got, " ") != want {
			t.Errorf("List by workspace = %q; want %q", strings.Join(got, " "), want)
		}
		if all := list(t, s, events.Filter{}); len(all) != 4 || all[0].Subject != "" || all[2].Subject != ws2 {
			t.Errorf("List = %+v; want 4 events, the newest without a subject, the third about %s", all, ws2)
		}
		var nulls int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM workspace_events WHERE workspace_id IS NULL`).Scan(&nulls); err != nil {
			t.Fatal(err)
		}
		if nulls != 1 {
			t.Errorf("%d rows with NULL workspace_id; want 1", nulls)
		}

		// List on a table keyed by uuid: the events carry no ID to page by.
		if all := list(t, s, events.Filter{}); all[0].ID != 0 {
			t.Errorf("List on a uuid-keyed table gave ID %d; want 0", all[0].ID)
		}
		if _, err := s.List(ctx, events.Filter{Before: 1}); !errors.Is(err, events.ErrFilter) {
			t.Errorf("List with Before on a uuid-keyed table = %v; want an error wrapping ErrFilter", err)
		}
	})
}

// A subject the column's type cannot hold costs the subject its column,
// never the event: it is written with a NULL subject and the text in the
// payload, found again by List, through Emit, EmitBatch and EmitTx.
func TestSubjectThatDoesNotFitTheColumn(t *testing.T) {
	columns := []struct {
		name, typ, good string
		bad             []string
	}{
		{"uuid", "uuid", "0b6f4c2e-1f1a-4d57-9d43-6e2f7c1a8b01", []string{"i-0abc", "0b6f4c2e-1f1a-4d57-9d43-6e2f7c1a8b0"}},
		{"bigint", "bigint", "9007199254740993", []string{"ws-1", "9223372036854775808", "1.5"}},
		{"integer", "integer", "42", []string{"2147483648"}},
		{"varchar(8)", "varchar(8)", "short", []string{"much too long"}},
	}
	for _, c := range columns {
		t.Run(c.name, func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, d driver) {
				db := pgtest.Open(t)
				ctx := context.Background()
				if _, err := db.Pool.Exec(ctx, `CREATE TABLE typed_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_type text NOT NULL, row_id `+c.typ+`, payload jsonb NOT NULL, created_at timestamptz NOT NULL)`); err != nil {
					t.Fatal(err)
				}
				s := d.sink(t, db, events.WithTable("typed_events"), events.WithSubjectColumn("row_id"))
				for _, bad := range c.bad {
					if err := s.Emit(ctx, events.Event{Type: "emit", Subject: bad, Payload: map[string]any{"n": 1}}); err != nil {
						t.Errorf("Emit(subject %q) = %v; want nil", bad, err)
					}
				}
				batch := []events.Event{{Type: "batch", Subject: c.good}}
				for _, bad := range c.bad {
					batch = append(batch, events.Event{Type: "batch", Subject: bad})
				}
				if err := s.EmitBatch(ctx, batch); err != nil {
					t.Fatalf("EmitBatch with %d subjects that do not fit = %v; want nil", len(c.bad), err)
				}
				x := d.begin(t, db)
				if err := s.EmitTx(ctx, x.handle, events.Event{Type: "tx", Subject: c.bad[0]}); err != nil {
					t.Fatalf("EmitTx(subject %q) = %v; want nil", c.bad[0], err)
				}
				if err := x.commit(); err != nil {
					t.Fatal(err)
				}

				for _, bad := range c.bad {
					got := list(t, s, events.Filter{Subject: bad})
					want := 2 // Emit, EmitBatch
					if bad == c.bad[0] {
						want = 3 // and EmitTx
					}
					if len(got) != want {
						t.Errorf("List(Subject %q) = %d events; want %d", bad, len(got), want)
					}
					for _, e := range got {
						if e.Subject != "" || e.Payload[events.SubjectTextKey] != bad {
							t.Errorf("%s event stored subject %q, payload %v; want NULL and %s %q", e.Type, e.Subject, e.Payload, events.SubjectTextKey, bad)
						}
					}
				}
				if got := list(t, s, events.Filter{Subject: c.good}); len(got) != 1 || got[0].Subject != c.good {
					t.Errorf("List(Subject %q) = %+v; want the one batch event, subject in its column", c.good, got)
				}
				if got := list(t, s, events.Filter{Type: "emit"}); len(got) > 0 && jsonOf(t, got[0].Payload) != fmt.Sprintf(`{"n":1,"subject_text":%q}`, c.bad[len(c.bad)-1]) {
					t.Errorf("payload = %s; want the caller's fields kept beside subject_text", jsonOf(t, got[0].Payload))
				}
				var nulls int
				if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM typed_events WHERE row_id IS NULL`).Scan(&nulls); err != nil {
					t.Fatal(err)
				}
				if want := 2*len(c.bad) + 1; nulls != want {
					t.Errorf("%d rows with a NULL subject; want %d", nulls, want)
				}
			})
		})
	}
}

// A column type the sink cannot check in advance (a domain) refuses a
// subject at the server: the event is still written, subject moved.
func TestSubjectRefusedByADomainColumn(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		db := pgtest.Open(t)
		ctx := context.Background()
		for _, q := range []string{
			`CREATE DOMAIN row_num AS bigint CHECK (VALUE > 0)`,
			`CREATE TABLE domain_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_type text NOT NULL, row_id row_num, payload jsonb NOT NULL, created_at timestamptz NOT NULL)`,
		} {
			if _, err := db.Pool.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		s := d.sink(t, db, events.WithTable("domain_events"), events.WithSubjectColumn("row_id"))
		if err := s.Emit(ctx, events.Event{Type: "emit", Subject: "i-0abc"}); err != nil {
			t.Fatalf("Emit into a domain column refusing the subject = %v; want nil", err)
		}
		batch := []events.Event{{Type: "batch", Subject: "7"}, {Type: "batch", Subject: "i-0abc"}, {Type: "batch", Subject: "-1"}, {Type: "batch", Subject: "8"}}
		if err := s.EmitBatch(ctx, batch); err != nil {
			t.Fatalf("EmitBatch into a domain column refusing one subject = %v; want nil", err)
		}
		var got []string
		for _, e := range list(t, s, events.Filter{}) {
			got = append(got, fmt.Sprintf("%s:%s:%v", e.Type, e.Subject, e.Payload[events.SubjectTextKey]))
		}
		if want := "batch:8:<nil> batch::-1 batch::i-0abc batch:7:<nil> emit::i-0abc"; strings.Join(got, " ") != want {
			t.Errorf("List = %q; want %q", strings.Join(got, " "), want)
		}
	})
}

func TestIntegerSubjectColumn(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		db := pgtest.Open(t)
		ctx := context.Background()
		if _, err := db.Pool.Exec(ctx, `CREATE TABLE row_events (id bigserial PRIMARY KEY, event_type text NOT NULL, row_id bigint, payload jsonb NOT NULL, created_at timestamptz NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		s := d.sink(t, db, events.WithTable("row_events"), events.WithSubjectColumn("row_id"))
		if err := s.EmitBatch(ctx, []events.Event{{Type: "t", Subject: "9007199254740993"}}); err != nil {
			t.Fatalf("EmitBatch into a bigint subject column: %v", err)
		}
		if err := s.Emit(ctx, events.Event{Type: "t", Subject: "42"}); err != nil {
			t.Fatalf("Emit into a bigint subject column: %v", err)
		}
		got := list(t, s, events.Filter{Subject: "9007199254740993"})
		if len(got) != 1 || got[0].Subject != "9007199254740993" {
			t.Errorf("List by integer subject = %+v; want the one event, every digit kept", got)
		}
	})
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	tests := []struct {
		name string
		opt  events.Option
		want string
	}{
		{"injection in table", events.WithTable("events; drop table x"), `table: sqlident: invalid identifier "events; drop table x"`},
		{"two dots", events.WithTable("a.b.c"), "table"},
		{"too long", events.WithTable(strings.Repeat("e", 64)), "longer than 63"},
		{"empty table", events.WithTable(""), "is empty"},
		{"qualified subject column", events.WithSubjectColumn("t.workspace_id"), "subject column"},
		{"quote in subject column", events.WithSubjectColumn(`id"`), "subject column"},
		{"zero write timeout", events.WithWriteTimeout(0), "write timeout must be positive"},
		{"negative write timeout", events.WithWriteTimeout(-time.Second), "write timeout"},
	}
	for _, tt := range tests {
		for _, d := range []struct {
			name string
			new  func(...events.Option) (*events.Postgres, error)
		}{
			{"NewPgx", func(o ...events.Option) (*events.Postgres, error) { return events.NewPgx(&pgxpool.Pool{}, o...) }},
			{"NewSQL", func(o ...events.Option) (*events.Postgres, error) { return events.NewSQL(&sql.DB{}, o...) }},
		} {
			s, err := d.new(tt.opt)
			if s != nil || !errors.Is(err, events.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: %s = %v, %v; want nil and an error wrapping ErrConfig containing %q", tt.name, d.name, s, err, tt.want)
			}
		}
	}
	if _, err := events.NewPgx(nil); !errors.Is(err, events.ErrConfig) {
		t.Errorf("NewPgx(nil) = %v; want an error wrapping ErrConfig", err)
	}
	if _, err := events.NewSQL(nil); !errors.Is(err, events.ErrConfig) {
		t.Errorf("NewSQL(nil) = %v; want an error wrapping ErrConfig", err)
	}
	if _, err := events.NewSQL(&sql.DB{}, nil, events.WithTable("public.Events")); err != nil {
		t.Errorf("NewSQL with a nil option and a valid qualified table = %v; want nil", err)
	}
}

// queryCounter counts the statements a pgx connection sends.
type queryCounter struct{ n atomic.Int32 }

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// EmitTx inside an open transaction costs exactly one statement: no
// savepoint, no read-back.
func TestEmitTxIsOneStatement(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	var counter queryCounter
	cfg.Tracer = &counter
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	s, err := events.NewPgx(conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for i := range 3 {
		before := counter.n.Load()
		if err := s.EmitTx(ctx, tx, events.Event{Type: "t", Subject: "s"}); err != nil {
			t.Fatal(err)
		}
		if n := counter.n.Load() - before; n != 1 {
			t.Errorf("EmitTx #%d sent %d statements; want 1", i+1, n)
		}
	}
}

// lockTable holds an exclusive lock on table until the returned func is
// called: every write to it waits.
func lockTable(t *testing.T, db *pgtest.DB, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	x, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Exec(ctx, `LOCK TABLE `+table+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = x.Rollback(ctx) }) }
	t.Cleanup(release)
	return release
}

// A sweeper pass hands EmitBatch the rest of its budget as a deadline: a
// locked table costs the pass that budget, not the whole write timeout.
// Cancellation and a deadline already past are still ignored.
func TestEmitBatchHonoursADeadlineStillAhead(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, db := migrated(t, d) // the default 5s write timeout
		batch := []events.Event{{Type: "pass"}, {Type: "pass"}}

		release := lockTable(t, db, events.DefaultTable)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.EmitBatch(ctx, batch)
		if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
			t.Errorf("EmitBatch on a locked table with 300ms left = %v after %v; want context.DeadlineExceeded after about 300ms", err, took)
		}
		// Emit keeps its full detachment: the lock is released while it waits.
		time.AfterFunc(500*time.Millisecond, release)
		if err := s.Emit(ctx, events.Event{Type: "emit"}); err != nil {
			t.Errorf("Emit with its caller's deadline past = %v; want nil", err)
		}

		release = lockTable(t, db, events.DefaultTable)
		time.AfterFunc(500*time.Millisecond, release)
		expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel2()
		if err := s.EmitBatch(expired, batch); err != nil {
			t.Errorf("EmitBatch with a deadline already past = %v; want nil (ignored, like cancellation)", err)
		}
		if got := list(t, s, events.Filter{Type: "pass"}); len(got) != 2 {
			t.Errorf("%d batch events stored; want the 2 of the batch whose deadline had passed", len(got))
		}
	})
}

// 100,000 events in one EmitBatch fit the default write timeout: each
// chunk has the timeout to itself.
func TestEmitBatchOf100kEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100,000 rows per driver")
	}
	forEachDriver(t, func(t *testing.T, d driver) {
		s, db := migrated(t, d)
		batch := make([]events.Event, 100_000)
		for i := range batch {
			batch[i] = events.Event{Type: "bulk", Subject: fmt.Sprintf("ws-%d", i), Payload: batchPayload(i)}
		}
		start := time.Now()
		if err := s.EmitBatch(context.Background(), batch); err != nil {
			t.Fatalf("EmitBatch of 100,000 = %v", err)
		}
		t.Logf("%s: 100,000 events in %v", d.name, time.Since(start))
		if n := count(t, db, events.DefaultTable); n != len(batch) {
			t.Errorf("%d rows; want %d", n, len(batch))
		}
	})
}

// NewPostgres, the former name, still builds the same sink.
func TestNewPostgresIsNewPgx(t *testing.T) {
	db := pgtest.Open(t)
	s, err := events.NewPostgres(db.Pool) //nolint:staticcheck // the deprecated name, on purpose
	if err != nil {
		t.Fatalf("NewPostgres: %v", err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Emit(context.Background(), events.Event{Type: "t"}); err != nil {
		t.Fatalf("Emit through NewPostgres's sink: %v", err)
	}
	if _, err := events.NewPostgres(nil); !errors.Is(err, events.ErrConfig) { //nolint:staticcheck
		t.Errorf("NewPostgres(nil) = %v; want an error wrapping ErrConfig", err)
	}
}

// Filters no stored event can match are the caller's mistake, reported as
// such before anything reaches the driver.
func TestListRejectsBadFilters(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, _ := migrated(t, d)
		for _, f := range []events.Filter{
			{Type: "t\x00"},
			{Subject: "s\x00"},
			{Type: "t\xff"},
			{Subject: "\xc3"},
			{Limit: -1},
			{Before: -1},
		} {
			got, err := s.List(context.Background(), f)
			if !errors.Is(err, events.ErrFilter) || got != nil || !strings.HasPrefix(err.Error(), "events: invalid filter: ") {
				t.Errorf("List(%+v) = %v, %v; want nil and an error wrapping ErrFilter", f, got, err)
			}
		}
	})
}

// Paging with Before walks the ledger newest first, in List's own order
// (At, then insertion), without skipping or repeating an event, even when
// events are written between pages and At disagrees with insertion order.
func TestListPagesWithBefore(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		s, _ := migrated(t, d)
		ctx := context.Background()
		// Inserted out of At order: minute 5 first, minute 1 last; 3 twice.
		for _, m := range []int{5, 2, 3, 3, 4, 1} {
			if err := s.Emit(ctx, events.Event{Type: "page", Subject: strconv.Itoa(m), At: t0.Add(time.Duration(m) * time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		var (
			got    []string
			before int64
			ids    = map[int64]bool{}
		)
		for page := 0; ; page++ {
			evs := list(t, s, events.Filter{Type: "page", Limit: 2, Before: before})
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if e.ID == 0 || ids[e.ID] {
					t.Fatalf("page %d: event ID %d is zero or repeated", page, e.ID)
				}
				ids[e.ID] = true
				got = append(got, e.Subject)
			}
			before = evs[len(evs)-1].ID
			if page == 0 {
				// Newer than everything listed so far: not part of this walk.
				if err := s.Emit(ctx, events.Event{Type: "page", Subject: "new", At: t0.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if want := "5 4 3 3 2 1"; strings.Join(got, " ") != want {
			t.Errorf("pages = %q; want %q", strings.Join(got, " "), want)
		}
	})
}
