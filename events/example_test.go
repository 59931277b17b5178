package events_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/teardown"
)

// A durable record of every instance StopWithRetry gives up on, in the
// host's database, written even when the request's context has expired.
func ExampleNewPgx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	sink, err := events.NewPgx(pool, events.WithWriteTimeout(3*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	if err := sink.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	var ec2 teardown.Stopper = teardown.StopperFunc(func(ctx context.Context, id string) error {
		return errors.New("ec2 unavailable") // stands in for the awsec2 client
	})
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = teardown.StopWithRetry(reqCtx, ec2, "i-0123456789abcdef0",
		teardown.WithOnExhausted(events.Exhausted(events.BestEffort(sink, slog.Default()), events.TypeRetryExhausted)))
	if err != nil {
		log.Printf("not stopped yet, recorded for the sweeper: %v", err)
	}

	// The leak ledger, newest first.
	leaks, err := sink.List(ctx, events.Filter{Type: events.TypeRetryExhausted, Since: time.Now().Add(-24 * time.Hour), Limit: 20})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range leaks {
		fmt.Println(e.At.Format(time.RFC3339), e.Subject, e.Payload["cause"], e.Payload["attempts"], e.Payload["error_code"])
	}
}

// An outbox: the event is written in the same transaction as the host's
// own change, so both happen or neither does.
func ExamplePostgres_EmitTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	sink, err := events.NewPgx(pool)
	if err != nil {
		log.Fatal(err)
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx) // a no-op once committed

	const id = "0b6f4c2e-1f1a-4d57-9d43-6e2f7c1a8b01"
	if _, err := tx.Exec(ctx, `UPDATE workspaces SET instance_id = NULL WHERE id = $1`, id); err != nil {
		log.Fatal(err)
	}
	if err := sink.EmitTx(ctx, tx, events.Event{
		Type:    events.TypeReaped,
		Subject: id,
		Payload: map[string]any{"instance_id": "i-0123456789abcdef0"},
	}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
}

// What Exhausted records: the calls actually made, why they stopped, and
// the AWS error code.
func ExampleExhausted() {
	throttled := teardown.StopperFunc(func(ctx context.Context, id string) error {
		return &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
	})
	ledger := events.NewMemory()
	// The DELETE handler knows which row the instance belongs to.
	ctx := events.WithResource(context.Background(), "i-0123456789abcdef0", "ws-42")
	_ = teardown.StopWithRetry(ctx, throttled, "i-0123456789abcdef0",
		teardown.WithMaxAttempts(4),
		teardown.WithBackoff(time.Millisecond, time.Millisecond),
		teardown.WithOnExhausted(events.Exhausted(ledger, events.TypeRetryExhausted)))

	for _, e := range ledger.Events() {
		fmt.Println(e.Type, e.Subject)
		for _, k := range []string{"instance_id", "resource_id", "attempts", "cause", "error_code", "last_error"} {
			fmt.Printf("  %s: %v\n", k, e.Payload[k])
		}
	}
	// Output:
	// teardown.retry_exhausted ws-42
	//   instance_id: i-0123456789abcdef0
	//   resource_id: ws-42
	//   attempts: 4
	//   cause: exhausted
	//   error_code: RequestLimitExceeded
	//   last_error: api error RequestLimitExceeded: Request limit exceeded.
}

// A sink that is down costs a log line, never a failed teardown.
func ExampleBestEffort() {
	down := events.Multi(events.NewMemory(), brokenSink{})
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	err := events.BestEffort(down, logger).Emit(context.Background(), events.Event{
		Type:    events.TypeReapFailed,
		Subject: "ws-42",
		Payload: map[string]any{"instance_id": "i-0abc"},
	})
	fmt.Println("err:", err)
	// Output:
	// level=ERROR msg="events: event not written" type=sweeper.reap_failed subject=ws-42 payload=map[instance_id:i-0abc] error="connection refused"
	// err: <nil>
}

type brokenSink struct{}

func (brokenSink) Emit(context.Context, events.Event) error { return errors.New("connection refused") }

func ExampleNewMemory() {
	m := events.NewMemory()
	sink := events.Multi(m, events.NewMemory())
	_ = sink.Emit(context.Background(), events.Event{Type: events.TypeDryRun, Subject: "ws-1"})
	_ = sink.Emit(context.Background(), events.Event{Type: events.TypeRowGoneDetected, Subject: "ws-2"})
	for _, e := range m.Events() {
		fmt.Println(e.Type, e.Subject)
	}
	// Output:
	// sweeper.dry_run ws-1
	// sweeper.row_gone_detected ws-2
}

// A Spooler in front of a sink that is down: Emit returns at once, the
// events wait in order, and Close writes them once the sink is back.
func ExampleSpool() {
	sink := &flaky{Memory: events.NewMemory(), down: true}
	spool := events.Spool(sink, events.WithSpoolBackoff(time.Millisecond, 10*time.Millisecond))
	for _, id := range []string{"ws-1", "ws-2", "ws-3"} {
		if err := spool.Emit(context.Background(), events.Event{Type: events.TypeReapFailed, Subject: id}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("held while down: %+v\n", spool.Stats())

	sink.setDown(false) // the database is back
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := spool.Close(ctx); err != nil {
		log.Fatal(err)
	}
	for _, e := range sink.Events() {
		fmt.Println(e.Type, e.Subject)
	}
	fmt.Printf("after Close: %+v\n", spool.Stats())
	// Output:
	// held while down: {Queued:3 Written:0 Dropped:0}
	// sweeper.reap_failed ws-1
	// sweeper.reap_failed ws-2
	// sweeper.reap_failed ws-3
	// after Close: {Queued:0 Written:3 Dropped:0}
}

// flaky is a Memory sink that can be down.
type flaky struct {
	*events.Memory
	mu   sync.Mutex
	down bool
}

func (f *flaky) setDown(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *flaky) Emit(ctx context.Context, e events.Event) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return errors.New("connection refused")
	}
	return f.Memory.Emit(ctx, e)
}

// EmitAll writes a page's events in one batch to any sink that can take
// one (here through Multi, to a Memory), and one by one to any other.
func ExampleEmitAll() {
	ledger := events.NewMemory()
	page := []events.Event{
		{Type: events.TypeReaped, Subject: "ws-1", Payload: map[string]any{"instance_id": "i-1"}},
		{Type: events.TypeReapFailed, Subject: "ws-2", Payload: map[string]any{"instance_id": "i-2"}},
	}
	if err := events.EmitAll(context.Background(), events.Multi(ledger), page); err != nil {
		log.Fatal(err)
	}
	for _, e := range ledger.Events() {
		fmt.Println(e.Type, e.Subject, e.Payload["instance_id"])
	}
	// Output:
	// sweeper.reaped ws-1 i-1
	// sweeper.reap_failed ws-2 i-2
}
