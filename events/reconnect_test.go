package events_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/faultproxy"
	"github.com/leakless/leakless/internal/pgtest"
)

// A pool keeps idle connections the server may end at any time (a restart,
// a failover, pg_terminate_backend). The event written next must still land,
// exactly once.
func TestEmitSurvivesAConnectionTheServerEnded(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		ctx := context.Background()
		db := pgtest.Open(t)
		app := "ended-" + db.Schema
		s := d.dial(t, db.URL+"&application_name="+app)
		if err := s.Migrate(ctx); err != nil { // leaves an idle pooled connection
			t.Fatalf("Migrate: %v", err)
		}
		kill := func() {
			t.Helper()
			var n int
			err := db.Pool.QueryRow(ctx,
				`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n)
			if err != nil || n == 0 {
				t.Fatalf("terminated %d connections of %s: %v; want at least 1", n, app, err)
			}
		}

		kill()
		if err := s.Emit(ctx, events.Event{Type: events.TypeRetryExhausted, Subject: "i-1", At: t0}); err != nil {
			t.Fatalf("Emit after the server ended the pooled connection = %v; want nil", err)
		}
		kill()
		batch := []events.Event{{Type: "b", Subject: "i-2", At: t0}, {Type: "b", Subject: "i-3", At: t0}}
		if err := s.EmitBatch(ctx, batch); err != nil {
			t.Fatalf("EmitBatch after the server ended the pooled connection = %v; want nil", err)
		}

		if got := list(t, s, events.Filter{Type: events.TypeRetryExhausted}); len(got) != 1 {
			t.Errorf("%d %s events stored; want exactly 1", len(got), events.TypeRetryExhausted)
		}
		if got := list(t, s, events.Filter{Type: "b"}); len(got) != 2 {
			t.Errorf("%d batch events stored; want exactly 2", len(got))
		}
	})
}

// throughProxy returns db's URL with its host replaced by a fault proxy in
// front of the server, and the proxy, closed when t ends.
func throughProxy(t *testing.T, db *pgtest.DB) (string, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	u.Host = p.Addr()
	return u.String(), p
}

// A database restart: every connection is reset and new ones are refused
// for two seconds. Emit and EmitBatch, called into the outage, keep trying
// and return nil once the database is back, each event stored once.
func TestEmitRidesOutARestart(t *testing.T) {
	const outage = 2 * time.Second
	forEachDriver(t, func(t *testing.T, d driver) {
		ctx := context.Background()
		db := pgtest.Open(t)
		proxied, proxy := throughProxy(t, db)
		s := d.dial(t, proxied) // the default 5s write timeout
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}

		for _, write := range []struct {
			name string
			emit func() error
			typ  string
			want int
		}{
			{"Emit", func() error { return s.Emit(ctx, events.Event{Type: "restart.emit", Subject: "ws-1"}) }, "restart.emit", 1},
			{"EmitBatch", func() error {
				return s.EmitBatch(ctx, []events.Event{{Type: "restart.batch", Subject: "ws-2"}, {Type: "restart.batch", Subject: "ws-3"}})
			}, "restart.batch", 2},
		} {
			began := time.Now()
			proxy.Outage(outage)
			time.Sleep(300 * time.Millisecond)
			if err := write.emit(); err != nil {
				t.Fatalf("%s 0.3s into a %v outage = %v; want nil", write.name, outage, err)
			}
			if took := time.Since(began); took < outage {
				t.Errorf("%s returned %v into a %v outage; want it to have waited for the database", write.name, took, outage)
			}
			if n := len(list(t, s, events.Filter{Type: write.typ})); n != write.want {
				t.Errorf("%s: %d events stored; want exactly %d", write.name, n, write.want)
			}
		}
		if st := proxy.Stats(); st.Refused == 0 || st.Dropped == 0 {
			t.Errorf("proxy %+v; want connections both dropped and refused, or the test proved nothing", st)
		}
	})
}
