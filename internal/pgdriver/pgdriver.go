package pgdriver

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Executor runs statements on a connection, a pool or a transaction.
type Executor interface {
	// Exec runs a statement whose rows, if any, are not wanted.
	Exec(ctx context.Context, query string, args ...any) error
	// Query calls row for each result row, stopping at its first error.
	Query(ctx context.Context, query string, args []any, row func(Row) error) error
	// QueryRow runs a statement for its first row; Scan reports the error.
	QueryRow(ctx context.Context, query string, args ...any) Row
	// InTx runs fn in one transaction, committed if fn returns nil and
	// rolled back otherwise. On a handle that is a transaction already,
	// fn runs in that transaction: a savepoint of it on pgx, the
	// transaction itself on database/sql, which cannot nest.
	InTx(ctx context.Context, fn func(Executor) error) error
}

// Row is the part of a result row that callers read.
type Row interface{ Scan(dest ...any) error }

// Copier is an Executor that can COPY rows into a table in one statement:
// pgx's, when its handle has CopyFrom (pools, connections and
// transactions all do).
type Copier interface {
	Executor
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// Int runs a query that returns one row of one integer column.
func Int(ctx context.Context, x Executor, query string, args ...any) (int, error) {
	var n, seen int
	err := x.Query(ctx, query, args, func(r Row) error {
		seen++
		return r.Scan(&n)
	})
	if err == nil && seen != 1 {
		err = fmt.Errorf("%d rows, want 1", seen)
	}
	return n, err
}

// rows is the part of pgx.Rows and *sql.Rows that walks a result. Close
// reports the error of the walk as a whole.
type rows interface {
	Row
	Next() bool
	Err() error
	Close() error
}

// each calls row for every row of r, then closes it.
func each(r rows, row func(Row) error) error {
	for r.Next() {
		if err := row(r); err != nil {
			_ = r.Close()
			return err
		}
	}
	if err := r.Err(); err != nil {
		_ = r.Close()
		return err
	}
	return r.Close()
}
