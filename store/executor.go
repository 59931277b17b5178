package store

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PgxDB is what NewPgx needs from pgx. *pgxpool.Pool, *pgx.Conn and pgx.Tx
// satisfy it; a *pgx.Conn or pgx.Tx must not be shared between goroutines,
// so a pool is what a long-running host passes.
type PgxDB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// executor is the seam between the store's SQL and a driver, so pgx and
// database/sql share one implementation. A row that is not there is an
// error wrapping sql.ErrNoRows from either (pgx.ErrNoRows wraps it).
type executor interface {
	exec(ctx context.Context, query string, args ...any) error
	query(ctx context.Context, query string, args ...any) (rows, error)
	queryRow(ctx context.Context, query string, args ...any) row
	begin(ctx context.Context) (tx, error)
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

type row interface {
	Scan(dest ...any) error
}

// querier is what executor and tx share: a statement that returns rows.
type querier interface {
	query(ctx context.Context, query string, args ...any) (rows, error)
}

type tx interface {
	exec(ctx context.Context, query string, args ...any) error
	query(ctx context.Context, query string, args ...any) (rows, error)
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
}

// pgxExecutor adapts PgxDB.
type pgxExecutor struct{ db PgxDB }

func (e pgxExecutor) exec(ctx context.Context, query string, args ...any) error {
	_, err := e.db.Exec(ctx, query, args...)
	return err
}

func (e pgxExecutor) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := e.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgxRows{r}, nil
}

func (e pgxExecutor) queryRow(ctx context.Context, query string, args ...any) row {
	return e.db.QueryRow(ctx, query, args...)
}

func (e pgxExecutor) begin(ctx context.Context) (tx, error) {
	t, err := e.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return pgxTx{t}, nil
}

type pgxRows struct{ pgx.Rows }

func (r pgxRows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}

type pgxTx struct{ tx pgx.Tx }

func (t pgxTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}

func (t pgxTx) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := t.tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgxRows{r}, nil
}

func (t pgxTx) commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t pgxTx) rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

// sqlExecutor adapts *sql.DB.
type sqlExecutor struct{ db *sql.DB }

func (e sqlExecutor) exec(ctx context.Context, query string, args ...any) error {
	_, err := e.db.ExecContext(ctx, query, args...)
	return err
}

func (e sqlExecutor) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := e.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (e sqlExecutor) queryRow(ctx context.Context, query string, args ...any) row {
	return e.db.QueryRowContext(ctx, query, args...)
}

func (e sqlExecutor) begin(ctx context.Context) (tx, error) {
	t, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{t}, nil
}

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

func (t sqlTx) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (t sqlTx) commit(context.Context) error   { return t.tx.Commit() }
func (t sqlTx) rollback(context.Context) error { return t.tx.Rollback() }
