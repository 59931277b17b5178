package events_test

import (
	"context"
	"testing"

	"github.com/leakless/leakless/events"
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
