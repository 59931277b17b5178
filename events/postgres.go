package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a [Sink] that stores events in a PostgreSQL table, through
// pgx ([NewPostgres]) or database/sql ([NewSQL]); both share one
// implementation and behave the same.
//
// Emit and EmitBatch are built for the moment a leak is recorded, which is
// often the moment the caller's context has run out: they write on a
// context detached from the caller's cancellation (its values are kept),
// bounded by their own timeout ([WithWriteTimeout]), and return nil only
// once the row is committed. EmitTx is the other way round: it writes inside
// the caller's transaction, so the event commits or rolls back with the
// caller's own writes.
//
// An event with a zero At is stamped with the current time. Times are
// stored with PostgreSQL's microsecond precision.
type Postgres struct {
	x            executor
	sql          statements
	writeTimeout time.Duration
}

// NewPostgres returns a sink that writes through pgx. db is a
// *pgxpool.Pool, a *pgx.Conn or a pgx.Tx; given a pgx.Tx, every write
// happens inside that transaction and is durable only once the caller
// commits it. Bad options, such as a table name that is not a plain
// identifier, are an error wrapping [ErrConfig].
func NewPostgres(db PgxDB, opts ...Option) (*Postgres, error) {
	if isNilPgx(db) {
		return nil, fmt.Errorf("%w: nil pgx database", ErrConfig)
	}
	return newPostgres(pgxExecutor{db}, opts)
}

// NewSQL returns a sink that writes through database/sql, with any
// PostgreSQL driver (pgx's stdlib, lib/pq, ...). Bad options are an error
// wrapping [ErrConfig].
func NewSQL(db *sql.DB, opts ...Option) (*Postgres, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", ErrConfig)
	}
	return newPostgres(sqlExecutor{db}, opts)
}

func newPostgres(x executor, opts []Option) (*Postgres, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Postgres{x: x, sql: newStatements(c), writeTimeout: c.writeTimeout}, nil
}

// Emit stores e and returns nil once the row is committed, whatever the
// state of ctx: the write runs on a context detached from ctx's
// cancellation and deadline, bounded by the sink's write timeout instead.
// A write that fails because the server had already ended its connection
// (a restart, a failover, pg_terminate_backend) is sent again on a fresh
// one, within the same timeout. A payload that cannot be marshalled to JSON
// is an error wrapping [ErrPayload], and nothing is written.
func (p *Postgres) Emit(ctx context.Context, e Event) error {
	r, err := newRecord(e, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := p.writeContext(ctx)
	defer cancel()
	args := r.appendArgs(nil)
	err = retryLostConnection(ctx, func() error { return p.x.exec(ctx, p.sql.insert, args...) })
	if err != nil {
		return fmt.Errorf("events: emit %q: %w", e.Type, err)
	}
	return nil
}

// EmitTx stores e inside the caller's transaction, tx, which is a pgx.Tx
// or a *sql.Tx (whichever constructor built p): the event commits or rolls
// back with the caller's own writes, as an outbox row does. It uses ctx as
// given, costs one statement in the open transaction, and returns an error
// wrapping [ErrUnsupportedTx] for any other type of tx.
func (p *Postgres) EmitTx(ctx context.Context, tx any, e Event) error {
	var x executor
	switch tx := tx.(type) {
	case pgx.Tx:
		x = pgxExecutor{tx}
	case *sql.Tx:
		if tx == nil {
			return fmt.Errorf("%w: nil *sql.Tx", ErrUnsupportedTx)
		}
		x = sqlExecutor{tx}
	default:
		return fmt.Errorf("%w %T: want a pgx.Tx or a *sql.Tx", ErrUnsupportedTx, tx)
	}
	r, err := newRecord(e, time.Now())
	if err != nil {
		return err
	}
	if err := x.exec(ctx, p.sql.insert, r.appendArgs(nil)...); err != nil {
		return fmt.Errorf("events: emit %q in transaction: %w", e.Type, err)
	}
	return nil
}

// EmitBatch stores every event, or none of them: COPY through pgx;
// multi-row INSERTs of at most 65,535 parameters each, in one transaction,
// through database/sql. Every payload is marshalled before anything is
// written, so one bad payload fails the batch with an error wrapping
// [ErrPayload] and no rows. Like Emit, it writes on a context detached from
// ctx's cancellation, bounded by the write timeout. Events with a zero At
// share one timestamp, and List returns them in reverse order.
func (p *Postgres) EmitBatch(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now()
	recs := make([]record, len(events))
	for i, e := range events {
		r, err := newRecord(e, now)
		if err != nil {
			return fmt.Errorf("events: batch event %d: %w", i, err)
		}
		recs[i] = r
	}
	ctx, cancel := p.writeContext(ctx)
	defer cancel()
	err := retryLostConnection(ctx, func() error { return p.x.insertMany(ctx, &p.sql, recs) })
	if err != nil {
		return fmt.Errorf("events: emit batch of %d: %w", len(events), err)
	}
	return nil
}

// writeContext keeps ctx's values but not its cancellation: the event a
// failed teardown emits must outlive the request that failed.
func (p *Postgres) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), p.writeTimeout)
}

// Filter selects events for [Postgres.List]. Zero fields match everything.
type Filter struct {
	Type    string    // only events of this type
	Subject string    // only events about this subject
	Since   time.Time // only events at or after Since
	Until   time.Time // only events before Until
	Limit   int       // at most this many, the newest; zero or negative means no limit
}

// List returns the events f selects, newest first (ties in order of
// insertion, latest first): the leak ledger. Payload numbers come back as
// json.Number, so 64-bit integers keep every digit; a payload re-marshalled
// with encoding/json is byte-for-byte what Emit stored. On a table whose
// subject column is a uuid, a Subject that is not a uuid is an error from
// the server.
func (p *Postgres) List(ctx context.Context, f Filter) ([]Event, error) {
	query, args := p.sql.list(f)
	var out []Event
	err := p.x.query(ctx, query, args, func(row scanner) error {
		var (
			e       Event
			payload string
		)
		if err := row.Scan(&e.Type, &e.Subject, &payload, &e.At); err != nil {
			return err
		}
		d := json.NewDecoder(strings.NewReader(payload))
		d.UseNumber()
		if err := d.Decode(&e.Payload); err != nil {
			return fmt.Errorf("payload of %q event: %w", e.Type, err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events: list: %w", err)
	}
	return out, nil
}

// Migrate creates the sink's table and indexes if they do not exist; it is
// safe to run on every start, from many replicas at once.
func (p *Postgres) Migrate(ctx context.Context) error {
	err := p.x.inTx(ctx, func(x executor) error {
		if err := x.exec(ctx, migrateLock, p.sql.migrateLockKey()); err != nil {
			return err
		}
		for _, stmt := range p.sql.schema {
			if err := x.exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("events: migrate: %w", err)
	}
	return nil
}

// SchemaSQL returns the DDL that Migrate runs, with the configured table
// and subject column, for hosts that apply migrations with their own tool.
// Every statement is idempotent.
func (p *Postgres) SchemaSQL() string { return p.sql.schemaSQL() }

// newRecord marshals e's payload (nil is stored as {}) and stamps a zero At
// with now. Times are cut to microseconds, PostgreSQL's precision, so every
// driver stores the same instant.
func newRecord(e Event, now time.Time) (record, error) {
	payload := "{}"
	if e.Payload != nil {
		b, err := json.Marshal(e.Payload)
		if err != nil {
			return record{}, fmt.Errorf("%w: %q event: %w", ErrPayload, e.Type, err)
		}
		payload = string(b)
	}
	at := e.At
	if at.IsZero() {
		at = now
	}
	return record{typ: e.Type, subject: e.Subject, payload: payload, at: at.Truncate(time.Microsecond)}, nil
}

// isNilPgx reports whether db is nil, or a nil *pgxpool.Pool or *pgx.Conn
// (the result of an ignored connection error) in an interface.
func isNilPgx(db PgxDB) bool {
	switch db := db.(type) {
	case nil:
		return true
	case *pgxpool.Pool:
		return db == nil
	case *pgx.Conn:
		return db == nil
	}
	return false
}
