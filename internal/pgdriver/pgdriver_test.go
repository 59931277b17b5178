package pgdriver_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/leakless/leakless/internal/pgdriver"
	"github.com/leakless/leakless/internal/pgtest"
)

// driver opens one Executor on a test database, and begins a
// transaction of the host's own on it.
type driver struct {
	name   string
	copies bool // its Executor is a Copier
	open   func(db *pgtest.DB) pgdriver.Executor
	begin  func(t *testing.T, db *pgtest.DB) (x pgdriver.Executor, rollback func())
}

var drivers = []driver{
	{
		name:   "pgx",
		copies: true,
		open:   func(db *pgtest.DB) pgdriver.Executor { return pgdriver.NewPgx(db.Pool) },
		begin: func(t *testing.T, db *pgtest.DB) (pgdriver.Executor, func()) {
			tx, err := db.Pool.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return pgdriver.NewPgx(tx), func() { _ = tx.Rollback(context.Background()) }
		},
	},
	{
		name: "database/sql",
		open: func(db *pgtest.DB) pgdriver.Executor { return pgdriver.NewSQL(db.SQL) },
		begin: func(t *testing.T, db *pgtest.DB) (pgdriver.Executor, func()) {
			tx, err := db.SQL.Begin()
			if err != nil {
				t.Fatal(err)
			}
			return pgdriver.NewSQL(tx), func() { _ = tx.Rollback() }
		},
	},
}

// withTable runs f for each driver on a fresh table t(n int).
func withTable(t *testing.T, f func(t *testing.T, d driver, x pgdriver.Executor)) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			x := d.open(pgtest.Open(t))
			if err := x.Exec(context.Background(), `CREATE TABLE t (n int NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			f(t, d, x)
		})
	}
}

// values reads t's values in order.
func values(t *testing.T, x pgdriver.Executor) []int {
	t.Helper()
	var got []int
	err := x.Query(context.Background(), `SELECT n FROM t ORDER BY n`, nil, func(r pgdriver.Row) error {
		var n int
		if err := r.Scan(&n); err != nil {
			return err
		}
		got = append(got, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func wantValues(t *testing.T, x pgdriver.Executor, want ...int) {
	t.Helper()
	got := values(t, x)
	if len(got) != len(want) {
		t.Fatalf("t holds %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("t holds %v, want %v", got, want)
		}
	}
}

func TestExecAndQuery(t *testing.T) {
	withTable(t, func(t *testing.T, _ driver, x pgdriver.Executor) {
		if err := x.Exec(context.Background(), `INSERT INTO t SELECT generate_series(1, $1::int)`, 3); err != nil {
			t.Fatal(err)
		}
		wantValues(t, x, 1, 2, 3)
	})
}

func TestQueryStopsAtTheRowsError(t *testing.T) {
	withTable(t, func(t *testing.T, _ driver, x pgdriver.Executor) {
		stop := errors.New("enough")
		calls := 0
		err := x.Query(context.Background(), `SELECT generate_series(1, 5)`, nil, func(pgdriver.Row) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("Query = %v after %d calls, want %v after 1", err, calls, stop)
		}
		// The connection is usable again: the result was closed.
		wantValues(t, x)
	})
}

func TestQueryReportsTheServersError(t *testing.T) {
	withTable(t, func(t *testing.T, _ driver, x pgdriver.Executor) {
		err := x.Query(context.Background(), `SELECT 1 / (n - 1) FROM (VALUES (2), (1)) v(n)`, nil, func(r pgdriver.Row) error {
			var n int
			return r.Scan(&n)
		})
		if !isDivisionByZero(err) {
			t.Fatalf("Query = %v, want division_by_zero", err)
		}
	})
}

func isDivisionByZero(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "22012"
}

func TestQueryRow(t *testing.T) {
	withTable(t, func(t *testing.T, _ driver, x pgdriver.Executor) {
		var n int
		if err := x.QueryRow(context.Background(), `SELECT $1::int + 1`, 41).Scan(&n); err != nil || n != 42 {
			t.Fatalf("QueryRow = %d, %v; want 42", n, err)
		}
		err := x.QueryRow(context.Background(), `SELECT n FROM t`).Scan(&n)
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("QueryRow of no row = %v, want sql.ErrNoRows", err)
		}
	})
}

// bare is a pgx handle with none of the optional methods.
type bare struct{ db pgdriver.PgxDB }

func (b bare) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return b.db.Exec(ctx, sql, args...)
}

func (b bare) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return b.db.Query(ctx, sql, args...)
}

func (b bare) Begin(ctx context.Context) (pgx.Tx, error) { return b.db.Begin(ctx) }

func TestPgxWithoutTheOptionalMethods(t *testing.T) {
	db := pgtest.Open(t)
	x := pgdriver.NewPgx(bare{db.Pool})
	if _, ok := x.(pgdriver.Copier); ok {
		t.Error("a handle without CopyFrom is a Copier")
	}
	ctx := context.Background()
	var n int
	if err := x.QueryRow(ctx, `SELECT 42`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("QueryRow = %d, %v; want 42", n, err)
	}
	if err := x.QueryRow(ctx, `SELECT 1 WHERE false`).Scan(&n); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("QueryRow of no row = %v, want sql.ErrNoRows", err)
	}
	if err := x.QueryRow(ctx, `SELECT 1 / 0`).Scan(&n); !isDivisionByZero(err) {
		t.Fatalf("QueryRow = %v, want division_by_zero", err)
	}
	if err := x.QueryRow(ctx, `SELECT 'x'`).Scan(&n); err == nil {
		t.Fatal("QueryRow scanned text into an int")
	}
	// The pool has every connection back.
	if got := db.Pool.Stat().AcquiredConns(); got != 0 {
		t.Fatalf("%d connections still acquired, want 0", got)
	}
}

func TestInTxCommits(t *testing.T) {
	withTable(t, func(t *testing.T, _ driver, x pgdriver.Executor) {
		err := x.InTx(context.Background(), func(tx pgdriver.Executor) error {
			return tx.Exec(context.Background(), `INSERT INTO t VALUES (1), (2)`)
		})
		if err != nil {
			t.Fatal(err)
		}
		wantValues(t, x, 1, 2)
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	withTable(t, func(t *testing.T, _ driver, x pgdriver.Executor) {
		failed := errors.New("second statement failed")
		err := x.InTx(context.Background(), func(tx pgdriver.Executor) error {
			if err := tx.Exec(context.Background(), `INSERT INTO t VALUES (1)`); err != nil {
				return err
			}
			return failed
		})
		if !errors.Is(err, failed) {
			t.Fatalf("InTx = %v, want %v", err, failed)
		}
		wantValues(t, x)
	})
}

// On a handle that is the host's transaction, InTx writes in it: what fn
// wrote goes when the host rolls back.
func TestInTxInTheCallersTransaction(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			db := pgtest.Open(t)
			x := d.open(db)
			if err := x.Exec(context.Background(), `CREATE TABLE t (n int NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			host, rollback := d.begin(t, db)
			err := host.InTx(context.Background(), func(tx pgdriver.Executor) error {
				return tx.Exec(context.Background(), `INSERT INTO t VALUES (1)`)
			})
			if err != nil {
				t.Fatal(err)
			}
			wantValues(t, host, 1)
			wantValues(t, x) // not committed: another connection sees none
			rollback()
			wantValues(t, x)
		})
	}
}

func TestCopier(t *testing.T) {
	withTable(t, func(t *testing.T, d driver, x pgdriver.Executor) {
		c, ok := x.(pgdriver.Copier)
		if ok != d.copies {
			t.Fatalf("%s is a Copier: %v, want %v", d.name, ok, d.copies)
		}
		if !ok {
			return
		}
		n, err := c.CopyFrom(context.Background(), pgx.Identifier{"t"}, []string{"n"}, pgx.CopyFromRows([][]any{{1}, {2}}))
		if err != nil || n != 2 {
			t.Fatalf("CopyFrom = %d, %v; want 2", n, err)
		}
		wantValues(t, x, 1, 2)
		// A transaction's executor copies too, inside the transaction.
		err = x.InTx(context.Background(), func(tx pgdriver.Executor) error {
			c, ok := tx.(pgdriver.Copier)
			if !ok {
				return errors.New("transaction is not a Copier")
			}
			_, err := c.CopyFrom(context.Background(), pgx.Identifier{"t"}, []string{"n"}, pgx.CopyFromRows([][]any{{3}}))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		wantValues(t, x, 1, 2, 3)
	})
}

func TestInt(t *testing.T) {
	withTable(t, func(t *testing.T, _ driver, x pgdriver.Executor) {
		if n, err := pgdriver.Int(context.Background(), x, `SELECT $1::int`, 7); err != nil || n != 7 {
			t.Fatalf("Int = %d, %v; want 7", n, err)
		}
		_, err := pgdriver.Int(context.Background(), x, `SELECT generate_series(1, 2)`)
		if err == nil || err.Error() != "2 rows, want 1" {
			t.Fatalf("Int of two rows = %v, want %q", err, "2 rows, want 1")
		}
		_, err = pgdriver.Int(context.Background(), x, `SELECT n FROM t`)
		if err == nil || err.Error() != "0 rows, want 1" {
			t.Fatalf("Int of no row = %v, want %q", err, "0 rows, want 1")
		}
	})
}
