package events

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// PgxDB is what [NewPgx] needs from pgx. *pgxpool.Pool, *pgx.Conn and
// pgx.Tx all satisfy it.
type PgxDB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// executor is the seam between the sink and its driver: the sink is
// written once against it, and pgx and database/sql each implement it.
type executor interface {
	exec(ctx context.Context, query string, args ...any) error
	// query calls row for each result row.
	query(ctx context.Context, query string, args []any, row func(scanner) error) error
	// insertMany writes every record in one statement, or none of them.
	insertMany(ctx context.Context, s *statements, recs []record) error
	// inTx runs fn in one transaction, committed if fn returns nil.
	inTx(ctx context.Context, fn func(executor) error) error
}

// scanner is the part of pgx.Rows and *sql.Rows that List needs.
type scanner interface{ Scan(dest ...any) error }

// rowIter is the part of pgx.Rows and *sql.Rows that walks a result.
type rowIter interface {
	scanner
	Next() bool
	Err() error
}

// eachRow calls row for every row of rows, then reports rows' own error.
func eachRow(rows rowIter, row func(scanner) error) error {
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// record is an event ready to bind: its payload already marshalled.
type record struct {
	typ, subject, payload string
	at                    time.Time
	key                   string // "" for none
}

// appendArgs appends r's bind values in the column order of
// statements.insert, or with keyed of statements.insertKeyed. An empty
// subject (or key) is NULL, so a uuid or integer subject column accepts
// events without one.
func (r *record) appendArgs(args []any, keyed bool) []any {
	var subject, key any
	if r.subject != "" {
		subject = r.subject
	}
	if !keyed {
		return append(args, r.typ, subject, r.payload, r.at)
	}
	if r.key != "" {
		key = r.key
	}
	return append(args, r.typ, subject, r.payload, r.at, key)
}

// insertArgs is the INSERT of recs and its arguments: with keys when any
// record has one.
func (s *statements) insertArgs(recs []record) (string, []any) {
	keyed := slices.ContainsFunc(recs, func(r record) bool { return r.key != "" })
	cols := copyColumns
	if keyed {
		cols = eventColumns
	}
	args := make([]any, 0, len(recs)*cols)
	for i := range recs {
		args = recs[i].appendArgs(args, keyed)
	}
	return s.insertRows(len(recs), keyed), args
}

type pgxExecutor struct{ db PgxDB }

func (x pgxExecutor) exec(ctx context.Context, query string, args ...any) error {
	_, err := x.db.Exec(ctx, query, args...)
	return err
}

func (x pgxExecutor) query(ctx context.Context, query string, args []any, row func(scanner) error) error {
	rows, err := x.db.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, row)
}

// insertMany uses COPY: one statement, so all rows or none.
func (x pgxExecutor) insertMany(ctx context.Context, s *statements, recs []record) error {
	_, err := x.db.CopyFrom(ctx, s.copyTable, s.copyColumns, &copySource{recs: recs, i: -1})
	return err
}

func (x pgxExecutor) inTx(ctx context.Context, fn func(executor) error) error {
	return pgx.BeginFunc(ctx, x.db, func(tx pgx.Tx) error { return fn(pgxExecutor{tx}) })
}

// copySource feeds records to CopyFrom without building a [][]any.
type copySource struct {
	recs []record
	i    int
	row  [copyColumns]any
}

func (c *copySource) Next() bool { c.i++; return c.i < len(c.recs) }
func (c *copySource) Err() error { return nil }

// Values reuses one slice: CopyFrom encodes each row before asking for the next.
func (c *copySource) Values() ([]any, error) {
	r := &c.recs[c.i]
	c.row[0], c.row[1], c.row[2], c.row[3] = r.typ, nil, r.payload, r.at
	if r.subject != "" {
		c.row[1] = subjectArg(r.subject)
	}
	return c.row[:], nil
}

// subjectArg is a subject on its way into COPY's binary format, which,
// unlike a bind parameter sent as text, must be encoded as the column's own
// type. It knows how to be text, a uuid or an integer.
type subjectArg string

// TextValue encodes the subject for a text or varchar column.
func (s subjectArg) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(s), Valid: true}, nil
}

// UUIDValue encodes the subject for a uuid column.
func (s subjectArg) UUIDValue() (pgtype.UUID, error) {
	var u pgtype.UUID
	if err := u.Scan(string(s)); err != nil {
		return u, fmt.Errorf("subject %q is not a uuid: %w", string(s), err)
	}
	return u, nil
}

// Int64Value encodes the subject for an integer column.
func (s subjectArg) Int64Value() (pgtype.Int8, error) {
	var n pgtype.Int8
	if err := n.Scan(string(s)); err != nil {
		return n, fmt.Errorf("subject %q is not an integer: %w", string(s), err)
	}
	return n, nil
}

// sqlConn is the part of *sql.DB and *sql.Tx the sink uses.
type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type sqlExecutor struct{ db sqlConn }

func (x sqlExecutor) exec(ctx context.Context, query string, args ...any) error {
	_, err := x.db.ExecContext(ctx, query, args...)
	return err
}

func (x sqlExecutor) query(ctx context.Context, query string, args []any, row func(scanner) error) error {
	rows, err := x.db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, row)
}

// insertMany uses one multi-row INSERT: plain VALUES lists work with every
// driver, where array parameters would not. EmitBatch sends at most
// BatchChunk records at a time, well within maxParams.
func (x sqlExecutor) insertMany(ctx context.Context, s *statements, recs []record) error {
	query, args := s.insertArgs(recs)
	return x.exec(ctx, query, args...)
}

// inTx begins a transaction on a *sql.DB. On a *sql.Tx, which cannot nest,
// fn runs in the caller's transaction.
func (x sqlExecutor) inTx(ctx context.Context, fn func(executor) error) error {
	db, ok := x.db.(*sql.DB)
	if !ok {
		return fn(x)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(sqlExecutor{tx}); err != nil {
		_ = tx.Rollback() // the statement's error is the one worth reporting
		return err
	}
	return tx.Commit()
}
