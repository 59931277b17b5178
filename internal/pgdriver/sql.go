package pgdriver

import (
	"context"
	"database/sql"
)

// SQLDB is what NewSQL needs from database/sql: *sql.DB, *sql.Conn and
// *sql.Tx all satisfy it.
type SQLDB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqlBeginner is a handle that can begin a transaction: *sql.DB and
// *sql.Conn, not *sql.Tx.
type sqlBeginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// NewSQL returns the Executor of db.
func NewSQL(db SQLDB) Executor { return sqlExecutor{db} }

type sqlExecutor struct{ db SQLDB }

func (x sqlExecutor) Exec(ctx context.Context, query string, args ...any) error {
	_, err := x.db.ExecContext(ctx, query, args...)
	return err
}

func (x sqlExecutor) Query(ctx context.Context, query string, args []any, row func(Row) error) error {
	r, err := x.db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	return each(r, row)
}

func (x sqlExecutor) QueryRow(ctx context.Context, query string, args ...any) Row {
	return x.db.QueryRowContext(ctx, query, args...)
}

// InTx begins a transaction on a *sql.DB or *sql.Conn. On a *sql.Tx, fn
// runs in the caller's transaction.
func (x sqlExecutor) InTx(ctx context.Context, fn func(Executor) error) error {
	db, ok := x.db.(sqlBeginner)
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
