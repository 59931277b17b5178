package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/pgtest"
)

// benchEvent is a typical exhausted-retry event.
func benchEvent(i int) events.Event {
	return events.Event{
		Type:    events.TypeRetryExhausted,
		Subject: fmt.Sprintf("ws-%08d", i),
		Payload: map[string]any{
			"resource_id": fmt.Sprintf("i-%017x", i),
			"attempts":    5,
			"cause":       "exhausted",
			"last_error":  "operation error EC2: TerminateInstances, api error RequestLimitExceeded: Request limit exceeded.",
			"error_code":  "RequestLimitExceeded",
		},
	}
}

func benchSink(b *testing.B, d driver) (*events.Postgres, *pgtest.DB) {
	b.Helper()
	db := pgtest.Open(b)
	s := d.sink(b, db)
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s, db
}

// BenchmarkEmit is one durable event: one INSERT, committed on its own.
func BenchmarkEmit(b *testing.B) {
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			s, _ := benchSink(b, d)
			ctx := context.Background()
			e := benchEvent(1)
			for b.Loop() {
				if err := s.Emit(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEmitTx is the marginal cost of an event inside a transaction
// that is already open, next to the same INSERT executed by hand and to a
// bare round trip (SELECT 1) on that transaction.
func BenchmarkEmitTx(b *testing.B) {
	const insert = `INSERT INTO structure_events (event_type, subject_id, payload, created_at) VALUES ($1, $2, $3, $4)`
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			b.Run("EmitTx", func(b *testing.B) {
				s, db := benchSink(b, d)
				tx := d.begin(b, db)
				ctx := context.Background()
				e := benchEvent(1)
				for b.Loop() {
					if err := s.EmitTx(ctx, tx.handle, e); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("raw_insert", func(b *testing.B) {
				_, db := benchSink(b, d)
				tx := d.begin(b, db)
				e := benchEvent(1)
				for b.Loop() {
					payload, err := json.Marshal(e.Payload)
					if err != nil {
						b.Fatal(err)
					}
					if err := tx.exec(insert, e.Type, e.Subject, string(payload), time.Now()); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("round_trip", func(b *testing.B) {
				_, db := benchSink(b, d)
				tx := d.begin(b, db)
				for b.Loop() {
					if err := tx.exec(`SELECT 1`); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

const batchSize = 1000

func reportEventsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)*batchSize/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEmitBatch writes 1,000 events per operation through each
// driver, and through pgx's CopyFrom directly, for scale: "raw_copyfrom"
// marshals the same payloads in the loop, as a caller would have to;
// "raw_copyfrom_prebuilt" copies rows prepared outside the loop.
func BenchmarkEmitBatch(b *testing.B) {
	batch := benchBatches(b, batchSize)
	columns := []string{"event_type", "subject_id", "payload", "created_at"}
	rows := func() [][]any {
		now := time.Now()
		rows := make([][]any, len(batch))
		for i, e := range batch {
			payload, err := json.Marshal(e.Payload)
			if err != nil {
				b.Fatal(err)
			}
			rows[i] = []any{e.Type, e.Subject, string(payload), now}
		}
		return rows
	}
	b.Run("raw_copyfrom", func(b *testing.B) {
		_, db := benchSink(b, drivers[0])
		ctx := context.Background()
		for b.Loop() {
			if _, err := db.Pool.CopyFrom(ctx, pgx.Identifier{events.DefaultTable}, columns, pgx.CopyFromRows(rows())); err != nil {
				b.Fatal(err)
			}
		}
		reportEventsPerSecond(b)
	})
	b.Run("raw_copyfrom_prebuilt", func(b *testing.B) {
		_, db := benchSink(b, drivers[0])
		ctx := context.Background()
		prebuilt := rows()
		for b.Loop() {
			if _, err := db.Pool.CopyFrom(ctx, pgx.Identifier{events.DefaultTable}, columns, pgx.CopyFromRows(prebuilt)); err != nil {
				b.Fatal(err)
			}
		}
		reportEventsPerSecond(b)
	})
}

// BenchmarkEmitBatch100k writes 100,000 events per operation, in chunks of
// events.BatchChunk, under the default write timeout.
func BenchmarkEmitBatch100k(b *testing.B) { benchBatches(b, 100_000) }

// benchBatches runs one EmitBatch of n events per operation through each
// driver, and returns the batch.
func benchBatches(b *testing.B, n int) []events.Event {
	batch := make([]events.Event, n)
	for i := range batch {
		batch[i] = benchEvent(i)
	}
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			s, _ := benchSink(b, d)
			ctx := context.Background()
			for b.Loop() {
				if err := s.EmitBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
	return batch
}
