package pgdriver

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PgxDB is what NewPgx needs from pgx: the part of *pgxpool.Pool,
// *pgx.Conn and pgx.Tx that every host's handle type has. QueryRow and
// CopyFrom are used when the handle has them.
type PgxDB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

type pgxRowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgxCopier interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// NewPgx returns the Executor of db, a [Copier] when db has CopyFrom.
func NewPgx(db PgxDB) Executor {
	if c, ok := db.(pgxCopier); ok {
		return pgxCopy{pgxExecutor{db}, c}
	}
	return pgxExecutor{db}
}

type pgxExecutor struct{ db PgxDB }

func (x pgxExecutor) Exec(ctx context.Context, query string, args ...any) error {
	_, err := x.db.Exec(ctx, query, args...)
	return err
}

func (x pgxExecutor) Query(ctx context.Context, query string, args []any, row func(Row) error) error {
	r, err := x.db.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	return each(pgxRows{r}, row)
}

func (x pgxExecutor) QueryRow(ctx context.Context, query string, args ...any) Row {
	if q, ok := x.db.(pgxRowQuerier); ok {
		return q.QueryRow(ctx, query, args...)
	}
	r, err := x.db.Query(ctx, query, args...)
	return pgxRow{r, err}
}

func (x pgxExecutor) InTx(ctx context.Context, fn func(Executor) error) error {
	tx, err := x.db.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(NewPgx(tx)); err != nil {
		_ = tx.Rollback(ctx) // the statement's error is the one worth reporting
		return err
	}
	return tx.Commit(ctx)
}

type pgxCopy struct {
	pgxExecutor
	c pgxCopier
}

func (x pgxCopy) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return x.c.CopyFrom(ctx, table, columns, src)
}

// pgxRows gives pgx.Rows the Close of *sql.Rows.
type pgxRows struct{ pgx.Rows }

func (r pgxRows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}

// pgxRow is QueryRow on a handle without it, as pgx's own does it.
type pgxRow struct {
	r   pgx.Rows
	err error
}

func (r pgxRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.r.Close()
	if !r.r.Next() {
		if err := r.r.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.r.Scan(dest...); err != nil {
		return err
	}
	r.r.Close()
	return r.r.Err()
}
