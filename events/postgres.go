package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/internal/migrate"
	"github.com/leakless/leakless/internal/pgdriver"
)

// Postgres is a [Sink] and a [BatchSink] that stores events in a
// PostgreSQL table, through pgx ([NewPgx]) or database/sql ([NewSQL]); both
// share one implementation and behave the same.
//
// Emit and EmitBatch are built for the moment a leak is recorded, which is
// often the moment the caller's context has run out: they write on a
// context detached from the caller's cancellation (its values are kept),
// bounded by their own timeout ([WithWriteTimeout]; for EmitBatch, also by
// a deadline of the caller's still ahead), and return nil only once the
// row is committed. EmitTx is the other way round: it writes inside
// the caller's transaction, so the event commits or rolls back with the
// caller's own writes.
//
// An event with a zero At is stamped with the current time. Times are
// stored with PostgreSQL's microsecond precision.
type Postgres struct {
	x            pgdriver.Executor
	sql          statements
	writeTimeout time.Duration
	cols         atomic.Pointer[columns] // nil until read from the catalog
	mig          *migrate.Set
}

// PgxDB is what [NewPgx] needs from pgx. *pgxpool.Pool, *pgx.Conn and
// pgx.Tx all satisfy it.
type PgxDB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// NewPgx returns a sink that writes through pgx. db is a *pgxpool.Pool, a
// *pgx.Conn or a pgx.Tx; given a pgx.Tx, every write happens inside that
// transaction and is durable only once the caller commits it. Bad options,
// such as a table name that is not a plain identifier, are an error
// wrapping [ErrConfig].
func NewPgx(db PgxDB, opts ...Option) (*Postgres, error) {
	if isNilPgx(db) {
		return nil, fmt.Errorf("%w: nil pgx database", ErrConfig)
	}
	return newPostgres(pgdriver.NewPgx(db), opts)
}

// NewPostgres is the former name of [NewPgx].
//
// Deprecated: use NewPgx, named like store.NewPgx.
func NewPostgres(db PgxDB, opts ...Option) (*Postgres, error) { return NewPgx(db, opts...) }

// NewSQL returns a sink that writes through database/sql, with any
// PostgreSQL driver (pgx's stdlib, lib/pq, ...). Bad options are an error
// wrapping [ErrConfig].
func NewSQL(db *sql.DB, opts ...Option) (*Postgres, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sql.DB", ErrConfig)
	}
	return newPostgres(pgdriver.NewSQL(db), opts)
}

func newPostgres(x pgdriver.Executor, opts []Option) (*Postgres, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Postgres{x: x, sql: newStatements(c), writeTimeout: c.writeTimeout, mig: migrationSet(c)}, nil
}

// Emit stores e and returns nil once the row is committed, whatever the
// state of ctx: the write runs on a context detached from ctx's
// cancellation and deadline, bounded by the sink's write timeout instead.
//
// Within that timeout, a write that certainly did not commit is sent again,
// after 50ms, then twice as long each time up to 500ms: the database
// refused the connection or reset it during the handshake, the pool could
// not connect, or the server had ended the connection (a restart, a
// failover, pg_terminate_backend). A write that may have committed (the
// connection was lost after the statement went out) is never sent twice;
// it is an error. For outages longer than the write timeout, see [Spool].
//
// A subject the subject column's type cannot hold is stored as NULL, its
// text kept in the payload under [SubjectTextKey]. A payload that cannot be
// marshalled to JSON is an error wrapping [ErrPayload], and nothing is
// written.
func (p *Postgres) Emit(ctx context.Context, e Event) error {
	ctx, cancel := p.writeContext(ctx)
	defer cancel()
	now := time.Now()
	r, err := newRecord(e, now, p.column(ctx))
	if err != nil {
		return err
	}
	if !p.keyed(ctx) {
		r.key = ""
	}
	if err := p.insertOne(ctx, e, now, r); err != nil {
		return fmt.Errorf("events: emit %q: %w", e.Type, err)
	}
	return nil
}

// insertOne writes r, the record of e, sending it again while it certainly
// did not commit.
func (p *Postgres) insertOne(ctx context.Context, e Event, now time.Time, r record) error {
	return retryUnsent(ctx, func() error {
		query, args := p.sql.insertArgs([]record{r})
		err := p.x.Exec(ctx, query, args...)
		if err != nil && r.subject != "" && misfit(err) {
			// A column type the sink cannot check in advance (a domain,
			// say) refused the subject: the event matters more than where
			// its subject is kept.
			if r, rerr := newRecord(e, now, fitsNothing); rerr == nil {
				query, args := p.sql.insertArgs([]record{r})
				return p.x.Exec(ctx, query, args...)
			}
		}
		return err
	})
}

// EmitTx stores e inside the caller's transaction, tx, which is a pgx.Tx
// or a *sql.Tx (whichever constructor built p): the event commits or rolls
// back with the caller's own writes, as an outbox row does. It uses ctx as
// given, costs one statement in the open transaction, and returns an error
// wrapping [ErrUnsupportedTx] for any other type of tx.
func (p *Postgres) EmitTx(ctx context.Context, tx any, e Event) error {
	var x pgdriver.Executor
	switch tx := tx.(type) {
	case pgx.Tx:
		x = pgdriver.NewPgx(tx)
	case *sql.Tx:
		if tx == nil {
			return fmt.Errorf("%w: nil *sql.Tx", ErrUnsupportedTx)
		}
		x = pgdriver.NewSQL(tx)
	default:
		return fmt.Errorf("%w %T: want a pgx.Tx or a *sql.Tx", ErrUnsupportedTx, tx)
	}
	// The column's type as already known, never read here: a failed
	// catalog read would abort the caller's transaction.
	var col *subjectColumn
	if c := p.known(); c != nil {
		col = &c.subject
	}
	r, err := newRecord(e, time.Now(), col)
	if err != nil {
		return err
	}
	if c := p.known(); c == nil || !c.keyed {
		r.key = ""
	}
	query, args := p.sql.insertArgs([]record{r})
	if err := x.Exec(ctx, query, args...); err != nil {
		return fmt.Errorf("events: emit %q in transaction: %w", e.Type, err)
	}
	return nil
}

// BatchChunk is the most events [Postgres.EmitBatch] writes in one
// statement, and so in one transaction of its own.
const BatchChunk = 5000

// EmitBatch stores events in order: COPY through pgx, one multi-row INSERT
// through database/sql, for each run of up to [BatchChunk] events. A batch
// that fits in one chunk is stored whole or not at all; a longer one is
// written chunk by chunk, each committed on its own and each bounded by the
// write timeout, so a batch of any size fits in it. If a chunk cannot be
// written, the chunks before it stay stored and the error is a
// *[BatchError] whose Written says how many events, from the start of the
// batch, are stored; writing events[Written:] again stores each event once.
//
// Every payload is marshalled before anything is written, so one bad
// payload fails the batch with an error wrapping [ErrPayload] and no rows.
// A subject that does not fit the subject column is kept as Emit keeps it,
// without failing the batch. Chunks that did not reach the database are
// sent again as Emit's writes are.
//
// Like Emit, EmitBatch writes even when the caller has given up: ctx's
// cancellation is ignored, and so is a deadline already past. A deadline
// still ahead, though, bounds the whole batch, so a caller with a budget
// of its own (a sweeper pass) is not held past it by a slow or locked
// table. Events with a zero At share one timestamp, and List returns them
// in reverse order.
func (p *Postgres) EmitBatch(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	ctx, cancel := p.batchContext(ctx)
	defer cancel()
	now := time.Now()
	col, keyed := p.column(ctx), p.keyed(ctx)
	recs := make([]record, len(events))
	for i, e := range events {
		r, err := newRecord(e, now, col)
		if err != nil {
			return fmt.Errorf("events: batch event %d: %w", i, err)
		}
		if !keyed {
			r.key = ""
		}
		recs[i] = r
	}
	for start := 0; start < len(recs); start += BatchChunk {
		end := min(start+BatchChunk, len(recs))
		if n, err := p.writeChunk(ctx, events[start:end], recs[start:end], now); err != nil {
			return &BatchError{Written: start + n, Total: len(events), Err: err}
		}
	}
	return nil
}

// writeChunk stores recs, the records of es, in one statement under its
// own write timeout, and returns how many of them are stored.
func (p *Postgres) writeChunk(ctx context.Context, es []Event, recs []record, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.writeTimeout)
	defer cancel()
	insert := func() error { return p.insertMany(ctx, recs) }
	if slices.ContainsFunc(recs, func(r record) bool { return r.key != "" }) {
		// COPY cannot leave out a key stored already: the INSERT can.
		insert = func() error {
			query, args := p.sql.insertArgs(recs)
			return p.x.Exec(ctx, query, args...)
		}
	}
	err := retryUnsent(ctx, insert)
	if err == nil {
		return len(recs), nil
	}
	if !misfit(err) || p.column(ctx).known() {
		return 0, err
	}
	// A subject column of a type the sink cannot check in advance refused
	// some subject: rather than lose the chunk, write it one event at a
	// time, each subject the column refuses moved to the payload. Rare, and
	// only after that error.
	for i := range recs {
		if err := p.insertOne(ctx, es[i], now, recs[i]); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}

// insertMany writes every record in one statement, or none of them: COPY
// through pgx; through database/sql, one multi-row INSERT, whose plain
// VALUES lists work with every driver, where array parameters would not.
// EmitBatch sends at most BatchChunk records at a time, well within
// maxParams.
func (p *Postgres) insertMany(ctx context.Context, recs []record) error {
	if c, ok := p.x.(pgdriver.Copier); ok {
		_, err := c.CopyFrom(ctx, p.sql.copyTable, p.sql.copyColumns, &copySource{recs: recs, i: -1})
		return err
	}
	query, args := p.sql.insertArgs(recs)
	return p.x.Exec(ctx, query, args...)
}

// writeContext keeps ctx's values but not its cancellation: the event a
// failed teardown emits must outlive the request that failed.
func (p *Postgres) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), p.writeTimeout)
}

// batchContext is writeContext for a batch: ctx's deadline, when it is
// still ahead, bounds the batch; a deadline already past is ignored, like
// cancellation, so the events of a caller that has given up are still
// written.
func (p *Postgres) batchContext(ctx context.Context) (context.Context, context.CancelFunc) {
	detached := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok && time.Until(d) > 0 {
		return context.WithDeadline(detached, d)
	}
	return context.WithCancel(detached)
}

// Filter selects events for [Postgres.List]. Zero fields match everything.
type Filter struct {
	Type    string    // only events of this type
	Subject string    // only events about this subject
	Since   time.Time // only events at or after Since
	Until   time.Time // only events before Until
	Limit   int       // at most this many, the newest; zero means no limit

	// Before continues a listing: given the ID of the last event of a page,
	// List returns the events that come after it in List's order (older,
	// or as old and inserted earlier), so pages neither skip nor repeat an
	// event however many are written meanwhile. The event must still be in
	// the table. Zero means from the newest.
	Before int64
}

// Validate reports a filter no stored event can match (a NUL byte or
// invalid UTF-8 in Type or Subject, a negative Limit or Before) as an error
// wrapping [ErrFilter], the check List makes before it reaches the driver;
// a ledger of the host's own can make the same one.
func (f Filter) Validate() error {
	for _, v := range []struct{ name, s string }{{"type", f.Type}, {"subject", f.Subject}} {
		if strings.IndexByte(v.s, 0) >= 0 {
			return fmt.Errorf("%w: %s holds a NUL byte", ErrFilter, v.name)
		}
		if !utf8.ValidString(v.s) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrFilter, v.name)
		}
	}
	if f.Limit < 0 {
		return fmt.Errorf("%w: negative limit %d", ErrFilter, f.Limit)
	}
	if f.Before < 0 {
		return fmt.Errorf("%w: negative Before %d", ErrFilter, f.Before)
	}
	return nil
}

// List returns the events f selects, newest first (ties in order of
// insertion, latest first): the leak ledger. Each event's ID is set, for
// [Filter.Before]. Payload numbers come back as json.Number, so 64-bit
// integers keep every digit; a payload re-marshalled with encoding/json is
// byte-for-byte what Emit stored. A Subject the subject column cannot hold
// matches the events whose subject was kept under [SubjectTextKey]. A
// filter no event can match, such as a Type with a NUL byte, is an error
// wrapping [ErrFilter].
func (p *Postgres) List(ctx context.Context, f Filter) ([]Event, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	cols := p.columns(ctx)
	intID := cols == nil || cols.intID
	if f.Before != 0 && !intID {
		return nil, fmt.Errorf("%w: Before needs an integer id column", ErrFilter)
	}
	query, args := p.sql.list(f, cols != nil && !cols.subject.fits(f.Subject), intID)
	var out []Event
	err := p.x.Query(ctx, query, args, func(row pgdriver.Row) error {
		var (
			e       Event
			payload string
		)
		if err := row.Scan(&e.ID, &e.Type, &e.Subject, &payload, &e.At); err != nil {
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

// newRecord marshals e's payload (nil is stored as {}) and stamps a zero At
// with now. Times are cut to microseconds, PostgreSQL's precision, so every
// driver stores the same instant. A subject col cannot hold goes into the
// payload under SubjectTextKey, and the record's subject is empty (NULL).
func newRecord(e Event, now time.Time, col *subjectColumn) (record, error) {
	if e.Subject != "" && !col.fits(e.Subject) {
		e.Payload = maps.Clone(e.Payload)
		if e.Payload == nil {
			e.Payload = make(map[string]any, 1)
		}
		e.Payload[SubjectTextKey] = e.Subject
		e.Subject = ""
	}
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
	return record{typ: e.Type, subject: e.Subject, payload: payload, at: at.Truncate(time.Microsecond), key: e.Key}, nil
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
