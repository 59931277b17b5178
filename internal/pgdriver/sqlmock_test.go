package pgdriver_test

import (
	"context"
	"errors"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/leakless/leakless/internal/pgdriver"
)

var errDB = errors.New("server closed the connection unexpectedly")

// mocked returns the database/sql Executor of a go-sqlmock database that
// matches statements exactly and checks that every expectation was met.
func mocked(t *testing.T) (pgdriver.Executor, sqlmock.Sqlmock) {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
		_ = db.Close()
	})
	return pgdriver.NewSQL(db), mock
}

func TestSQLErrors(t *testing.T) {
	failed := errors.New("fn failed")
	insert := func(tx pgdriver.Executor) error { return tx.Exec(context.Background(), `INSERT 1`) }
	for _, c := range []struct {
		name   string
		expect func(sqlmock.Sqlmock)
		run    func(pgdriver.Executor) error
		want   error
	}{
		{"exec", func(m sqlmock.Sqlmock) { m.ExpectExec(`INSERT 1`).WillReturnError(errDB) }, insert, errDB},
		{"query", func(m sqlmock.Sqlmock) { m.ExpectQuery(`SELECT 1`).WillReturnError(errDB) },
			func(x pgdriver.Executor) error {
				return x.Query(context.Background(), `SELECT 1`, nil, func(pgdriver.Row) error { return nil })
			}, errDB},
		{"row", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(`SELECT n`).WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(1).AddRow(2).RowError(1, errDB)).RowsWillBeClosed()
		}, func(x pgdriver.Executor) error {
			return x.Query(context.Background(), `SELECT n`, nil, func(r pgdriver.Row) error { var n int; return r.Scan(&n) })
		}, errDB},
		{"callback", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(`SELECT n`).WillReturnRows(sqlmock.NewRows([]string{"n"}).AddRow(1).AddRow(2)).RowsWillBeClosed()
		}, func(x pgdriver.Executor) error {
			return x.Query(context.Background(), `SELECT n`, nil, func(pgdriver.Row) error { return failed })
		}, failed},
		{"query row", func(m sqlmock.Sqlmock) { m.ExpectQuery(`SELECT 1`).WillReturnError(errDB) },
			func(x pgdriver.Executor) error {
				var n int
				return x.QueryRow(context.Background(), `SELECT 1`).Scan(&n)
			}, errDB},
		{"begin", func(m sqlmock.Sqlmock) { m.ExpectBegin().WillReturnError(errDB) },
			func(x pgdriver.Executor) error { return x.InTx(context.Background(), insert) }, errDB},
		{"statement in the transaction", func(m sqlmock.Sqlmock) {
			m.ExpectBegin()
			m.ExpectExec(`INSERT 1`).WillReturnError(errDB)
			m.ExpectRollback()
		}, func(x pgdriver.Executor) error { return x.InTx(context.Background(), insert) }, errDB},
		{"rollback fails too", func(m sqlmock.Sqlmock) {
			m.ExpectBegin()
			m.ExpectRollback().WillReturnError(errors.New("rollback failed"))
		}, func(x pgdriver.Executor) error {
			return x.InTx(context.Background(), func(pgdriver.Executor) error { return failed })
		}, failed},
		{"commit", func(m sqlmock.Sqlmock) {
			m.ExpectBegin()
			m.ExpectExec(`INSERT 1`).WillReturnResult(sqlmock.NewResult(0, 1))
			m.ExpectCommit().WillReturnError(errDB)
		}, func(x pgdriver.Executor) error { return x.InTx(context.Background(), insert) }, errDB},
	} {
		t.Run(c.name, func(t *testing.T) {
			x, mock := mocked(t)
			c.expect(mock)
			if err := c.run(x); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// A transaction commits once and sends nothing after.
func TestSQLInTxCommits(t *testing.T) {
	x, mock := mocked(t)
	mock.ExpectBegin()
	mock.ExpectExec(`INSERT 1`).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	err := x.InTx(context.Background(), func(tx pgdriver.Executor) error {
		return tx.Exec(context.Background(), `INSERT 1`)
	})
	if err != nil {
		t.Fatal(err)
	}
}
