package events_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/pgtest"
)

// Behind PgBouncer in transaction mode the sink works in the exec modes
// that prepare nothing across transactions, and pgx's default mode fails,
// as the store's does.
func TestPgBouncerTransactionMode(t *testing.T) {
	through := pgtest.Bouncer(t)
	db := pgtest.Open(t)
	for _, mode := range []string{"", "simple_protocol", "exec", "cache_describe"} {
		name := mode
		if name == "" {
			name = "default exec mode fails"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			pool := pgtest.BouncerPool(t, through, mode)
			table := fmt.Sprintf("%s.ledger_%d", db.Schema, len(mode))
			sink, err := events.NewPgx(pool, events.WithTable(table))
			if err != nil {
				t.Fatal(err)
			}
			if err := sink.Migrate(ctx); err != nil {
				t.Fatalf("Migrate through PgBouncer: %v", err)
			}
			var failed, calls atomic.Int64
			var first atomic.Value
			call := func(err error) {
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for r := range 5 {
						subject := fmt.Sprintf("ws-%d-%d", w, r)
						call(sink.Emit(ctx, events.Event{Type: events.TypeReaped, Subject: subject}))
						call(sink.EmitBatch(ctx, []events.Event{{Type: events.TypeReapFailed, Subject: subject}, {Type: events.TypeReapFailed, Subject: subject}}))
						_, err := sink.List(ctx, events.Filter{Subject: subject})
						call(err)
						call(sink.CheckSchema(ctx))
					}
				})
			}
			wg.Wait()
			if mode == "" {
				if failed.Load() == 0 {
					t.Fatalf("%d calls through PgBouncer in pgx's default exec mode all succeeded; want prepared statements to fail", calls.Load())
				}
				t.Logf("pgx's default exec mode: %d of %d calls failed; first: %v", failed.Load(), calls.Load(), first.Load())
				return
			}
			if failed.Load() != 0 {
				t.Fatalf("default_query_exec_mode=%s: %d of %d calls failed; first: %v", mode, failed.Load(), calls.Load(), first.Load())
			}
			if n := count(t, db, table); n != 8*5*3 {
				t.Fatalf("%s has %d events, want %d", table, n, 8*5*3)
			}
		})
	}
}
