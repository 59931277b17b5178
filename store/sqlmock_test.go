package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/leakless/leakless/internal/migrate"
	"github.com/leakless/leakless/teardown"
)

var update = flag.Bool("update", false, "rewrite testdata/*.sql from the statements the code builds")

// mockTable is the configuration whose statements are kept in testdata.
var mockTable = Table{
	Name: "app.workspaces", ID: "id", Parent: "parent_id",
	Status: "status", InstanceID: "instance_id", Removed: "removed",
}

// golden compares got with testdata/name.sql (rewriting it under -update)
// and returns the file's text: what the mocks below expect, verbatim.
func golden(t *testing.T, name, got string) string {
	t.Helper()
	path := filepath.Join("testdata", name+".sql")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("statement %s changed; got:\n%s\nwant (%s):\n%s", name, got, path, want)
	}
	return string(want)
}

// TestSQL pins every statement's exact text for one configuration.
func TestSQL(t *testing.T) {
	st := mockStore(t)
	plain, err := NewSQL(&sql.DB{}, Table{Name: "workspaces", ID: "id", Status: "status", InstanceID: "instance_id", Removed: "removed"})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{
		"schema":         st.SchemaSQL(),
		"schema_default": plain.SchemaSQL(),
		"due":            st.sql.due,
		"walk_first":     st.sql.walkFirst,
		"walk_after":     st.sql.walkAfter,
		"walk_end_first": st.sql.walkEndFirst,
		"walk_end_after": st.sql.walkEndAfter,
		"purge":          st.sql.purge,
		"reaped":         st.sql.reaped,
		"failed":         st.sql.failed,
		"remove_tree":    st.sql.removeTree,
		"remove_root":    plain.sql.removeTree,
		"stopping":       st.sql.stopping,
		"resources":      st.sql.resources,
		"held":           st.sql.held,
		"lead":           st.sql.lead,
		"release":        st.sql.release,
	} {
		golden(t, name, got)
	}
}

type mockedStore struct {
	*Postgres
	mock sqlmock.Sqlmock
	want func(name string) string // a statement's golden text
}

func mockStore(t *testing.T) mockedStore {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewSQL(db, mockTable, WithSchema("leakless"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mock.ExpectClose()
		if err := db.Close(); err != nil {
			t.Error(err)
		}
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
	})
	return mockedStore{st, mock, func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name+".sql"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}}
}

var errBoom = errors.New("connection reset")

func wantStoreErr(t *testing.T, err error, prefix string, target error) {
	t.Helper()
	if !errors.Is(err, target) || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("error %v, want one starting %q and wrapping %v", err, prefix, target)
	}
}

var pendingColumns = []string{"id", "instance_id", "attempts", "last_error", "not_found_for"}

// Pending reads the due records, then walks the pending index for rows
// with none: never-attempted rows first, the walk's after the recorded
// ones, attempted rows last.
func TestSQLPending(t *testing.T) {
	m := mockStore(t)
	m.mock.ExpectQuery(m.want("due")).WithArgs("app.workspaces", 10).WillReturnRows(
		sqlmock.NewRows(pendingColumns).AddRow("ws-2", "i-2", 0, "", 0).AddRow("ws-1", "i-1", 3, "NotFound", 90_000_000))
	// The page is short: the walk reads the whole index, from its start,
	// in stretches of at least 5,000 entries, then purges stale records
	// once.
	m.mock.ExpectQuery(m.want("walk_first")).WithArgs("app.workspaces", 9, 5000).WillReturnRows(
		sqlmock.NewRows([]string{"id", "instance_id"}).AddRow("ws-3", "i-3"))
	m.mock.ExpectQuery(m.want("walk_end_first")).WithArgs(5000).WillReturnRows(sqlmock.NewRows([]string{"id"}).AddRow("ws-7"))
	m.mock.ExpectQuery(m.want("walk_after")).WithArgs("app.workspaces", 8, 5000, "ws-7").WillReturnRows(
		sqlmock.NewRows([]string{"id", "instance_id"}).AddRow("ws-8", "i-8"))
	m.mock.ExpectQuery(m.want("walk_end_after")).WithArgs(5000, "ws-7").WillReturnRows(sqlmock.NewRows([]string{"id"}))
	m.mock.ExpectExec(m.want("purge")).WithArgs("app.workspaces").WillReturnResult(sqlmock.NewResult(0, 0))
	got, err := m.Pending(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pending{
		{ResourceID: "ws-2", InstanceID: "i-2"},
		{ResourceID: "ws-3", InstanceID: "i-3"},
		{ResourceID: "ws-8", InstanceID: "i-8"},
		{ResourceID: "ws-1", InstanceID: "i-1", Attempts: 3, LastError: "NotFound", NotFoundFor: 90 * time.Second},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending = %+v, want %+v", got, want)
	}

	// Within the rescan interval a short page reads one stretch on, from
	// where the last walk stopped (the end: so from the start), and a
	// full page of never-attempted rows does not walk at all.
	m.mock.ExpectQuery(m.want("due")).WithArgs("app.workspaces", 10).WillReturnRows(sqlmock.NewRows(pendingColumns))
	m.mock.ExpectQuery(m.want("walk_first")).WithArgs("app.workspaces", 10, 100).WillReturnRows(
		sqlmock.NewRows([]string{"id", "instance_id"}).AddRow("ws-3", "i-3"))
	m.mock.ExpectQuery(m.want("walk_end_first")).WithArgs(100).WillReturnRows(sqlmock.NewRows([]string{"id"}).AddRow("ws-7"))
	if got, err := m.Pending(context.Background(), 10); err != nil || len(got) != 1 {
		t.Fatalf("Pending = %+v, %v; want ws-3 alone", got, err)
	}
	m.mock.ExpectQuery(m.want("due")).WithArgs("app.workspaces", 1).WillReturnRows(
		sqlmock.NewRows(pendingColumns).AddRow("ws-2", "i-2", 0, "", 0))
	if got, err := m.Pending(context.Background(), 1); err != nil || len(got) != 1 {
		t.Fatalf("Pending = %+v, %v; want ws-2 alone", got, err)
	}
}

func TestSQLPendingErrors(t *testing.T) {
	tests := []struct {
		name   string
		expect func(m mockedStore)
		target error
	}{
		{"query", func(m mockedStore) { m.mock.ExpectQuery(m.want("due")).WillReturnError(errBoom) }, errBoom},
		{"row", func(m mockedStore) {
			m.mock.ExpectQuery(m.want("due")).WillReturnRows(sqlmock.NewRows(pendingColumns).AddRow("ws-1", "i-1", 0, "", 0).AddRow("ws-2", "i-2", 0, "", 0).RowError(1, errBoom))
		}, errBoom},
		{"close", func(m mockedStore) {
			m.mock.ExpectQuery(m.want("due")).WillReturnRows(sqlmock.NewRows(pendingColumns).AddRow("ws-1", "i-1", 0, "", 0).CloseError(errBoom))
		}, errBoom},
		{"scan", func(m mockedStore) {
			m.mock.ExpectQuery(m.want("due")).WillReturnRows(sqlmock.NewRows(pendingColumns).AddRow("ws-1", "i-1", "many", "", 0))
		}, nil},
		{"walk", func(m mockedStore) {
			m.mock.ExpectQuery(m.want("due")).WillReturnRows(sqlmock.NewRows(pendingColumns))
			m.mock.ExpectQuery(m.want("walk_first")).WillReturnError(errBoom)
		}, errBoom},
		{"walk end", func(m mockedStore) {
			m.mock.ExpectQuery(m.want("due")).WillReturnRows(sqlmock.NewRows(pendingColumns))
			m.mock.ExpectQuery(m.want("walk_first")).WillReturnRows(sqlmock.NewRows([]string{"id", "instance_id"}))
			m.mock.ExpectQuery(m.want("walk_end_first")).WillReturnError(errBoom)
		}, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mockStore(t)
			tt.expect(m)
			got, err := m.Pending(context.Background(), 5)
			if got != nil || err == nil || !strings.HasPrefix(err.Error(), "store: pending: ") {
				t.Fatalf("Pending = %v, %v; want nil and a store: pending: error", got, err)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Fatalf("error %v does not wrap %v", err, tt.target)
			}
		})
	}
}

// A purge that fails (a read-only connection) fails nothing.
func TestSQLPendingPurgeFailureIsHousekeeping(t *testing.T) {
	m := mockStore(t)
	m.mock.ExpectQuery(m.want("due")).WillReturnRows(sqlmock.NewRows(pendingColumns))
	m.mock.ExpectQuery(m.want("walk_first")).WillReturnRows(sqlmock.NewRows([]string{"id", "instance_id"}).AddRow("ws-1", "i-1"))
	m.mock.ExpectQuery(m.want("walk_end_first")).WillReturnRows(sqlmock.NewRows([]string{"id"}))
	m.mock.ExpectExec(m.want("purge")).WillReturnError(errBoom)
	if got, err := m.Pending(context.Background(), 5); err != nil || len(got) != 1 {
		t.Fatalf("Pending = %+v, %v; want ws-1 and no error", got, err)
	}
}

func TestSQLReaped(t *testing.T) {
	m := mockStore(t)
	p := Pending{ResourceID: "ws-1", InstanceID: "i-1"}
	args := []driver.Value{`{"ws-1"}`, `{"i-1"}`, "app.workspaces", `"app"."workspaces"`, "instance_id"}
	m.mock.ExpectQuery(m.want("reaped")).WithArgs(args...).WillReturnRows(sqlmock.NewRows([]string{"id"}).AddRow("ws-1"))
	m.mock.ExpectQuery(m.want("reaped")).WithArgs(args...).WillReturnRows(sqlmock.NewRows([]string{"id"}))
	m.mock.ExpectQuery(m.want("reaped")).WithArgs(args...).WillReturnError(errBoom)
	ctx := context.Background()
	if ok, err := m.Reaped(ctx, p); !ok || err != nil {
		t.Fatalf("Reaped with one row cleared = %v, %v; want true", ok, err)
	}
	if ok, err := m.Reaped(ctx, p); ok || err != nil {
		t.Fatalf("Reaped with none cleared = %v, %v; want false", ok, err)
	}
	ok, err := m.Reaped(ctx, p)
	if ok {
		t.Fatal("Reaped on error = true")
	}
	wantStoreErr(t, err, `store: reaped "ws-1": `, errBoom)
}

// A page is one statement; a row listed twice is cleared once, and ids
// with quotes and backslashes survive the array literal.
func TestSQLReapedAll(t *testing.T) {
	m := mockStore(t)
	ps := []Pending{{ResourceID: `ws-"1"`, InstanceID: "i-1"}, {ResourceID: `ws\2`, InstanceID: "i-2"}, {ResourceID: `ws-"1"`, InstanceID: "i-1"}}
	m.mock.ExpectQuery(m.want("reaped")).
		WithArgs(`{"ws-\"1\"","ws\\2","ws-\"1\""}`, `{"i-1","i-2","i-1"}`, "app.workspaces", `"app"."workspaces"`, "instance_id").
		WillReturnRows(sqlmock.NewRows([]string{"id"}).AddRow(`ws-"1"`))
	m.mock.ExpectQuery(m.want("reaped")).WillReturnError(errBoom)
	got, err := m.ReapedAll(context.Background(), ps)
	if err != nil || !slices.Equal(got, []bool{true, false, false}) {
		t.Fatalf("ReapedAll = %v, %v; want [true false false]", got, err)
	}
	got, err = m.ReapedAll(context.Background(), ps)
	if got != nil {
		t.Fatalf("ReapedAll on error = %v, want nil", got)
	}
	wantStoreErr(t, err, `store: reaped 3 rows: `, errBoom)
}

func TestSQLFailed(t *testing.T) {
	m := mockStore(t)
	p := Pending{ResourceID: "ws-1", InstanceID: "i-1", Attempts: 4}
	long := strings.Repeat("e", 3000)
	failed := func(lastError, delay, notFound string) *sqlmock.ExpectedExec {
		return m.mock.ExpectExec(m.want("failed")).WithArgs("app.workspaces", `{"ws-1"}`, `{"i-1"}`, lastError, delay, notFound, "{false}")
	}
	// The delay is sent in microseconds, for the database to add to its
	// own clock; a negative one is due at once, like zero.
	failed(`{"throttled"}`, "{90000000}", "{false}").WillReturnResult(sqlmock.NewResult(0, 1))
	failed(`{"`+long[:maxLastError]+`"}`, "{0}", "{false}").WillReturnResult(sqlmock.NewResult(0, 1))
	failed(`{"gone? wrapped: `+teardown.ErrNotFound.Error()+`"}`, "{0}", "{true}").WillReturnResult(sqlmock.NewResult(0, 1))
	failed(`{""}`, "{0}", "{false}").WillReturnError(errBoom)
	ctx := context.Background()
	if err := m.Failed(ctx, p, errors.New("throttled"), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Failed(ctx, p, errors.New(long), -time.Hour); err != nil {
		t.Fatal(err)
	}
	// Whether the error is a NotFound is decided here, through any
	// wrapping, and bound as a boolean.
	if err := m.Failed(ctx, p, fmt.Errorf("gone? wrapped: %w", teardown.ErrNotFound), 0); err != nil {
		t.Fatal(err)
	}
	wantStoreErr(t, m.Failed(ctx, p, nil, 0), `store: failed "ws-1": `, errBoom)
}

// A page of failures is one statement, with one entry per row: the last.
func TestSQLFailedAll(t *testing.T) {
	m := mockStore(t)
	m.mock.ExpectExec(m.want("failed")).
		WithArgs("app.workspaces", `{"ws-2","ws-1"}`, `{"i-2","i-1"}`, `{"b","c: `+teardown.ErrNotFound.Error()+`"}`, "{60000000,0}", "{false,true}", "{false,false}").
		WillReturnResult(sqlmock.NewResult(0, 2))
	m.mock.ExpectExec(m.want("failed")).WillReturnError(errBoom)
	fs := []Failure{
		{Pending: Pending{ResourceID: "ws-1", InstanceID: "i-1"}, Err: errors.New("a"), Delay: time.Minute},
		{Pending: Pending{ResourceID: "ws-2", InstanceID: "i-2"}, Err: errors.New("b"), Delay: time.Minute},
		{Pending: Pending{ResourceID: "ws-1", InstanceID: "i-1"}, Err: fmt.Errorf("c: %w", teardown.ErrNotFound)},
	}
	if err := m.FailedAll(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	wantStoreErr(t, m.FailedAll(context.Background(), fs), `store: failed 3 rows: `, errBoom)
}

func TestSQLRemoveTree(t *testing.T) {
	tree := func() *sqlmock.Rows {
		return sqlmock.NewRows(pendingColumns).AddRow("ws-3", "i-3", 2, "boom", 0).AddRow("ws-1", "i-1", 0, "", 0).AddRow("ws-2", nil, 0, "", 0)
	}
	want := []Pending{{ResourceID: "ws-1", InstanceID: "i-1"}, {ResourceID: "ws-3", InstanceID: "i-3", Attempts: 2, LastError: "boom"}}
	ctx := context.Background()

	t.Run("walks until no new row, in one transaction", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectBegin()
		m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnRows(
			sqlmock.NewRows(pendingColumns).AddRow("ws-1", "i-1", 0, "", 0))
		m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnRows(tree())
		m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnRows(tree())
		m.mock.ExpectCommit()
		got, err := m.RemoveTree(ctx, "ws-1")
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("RemoveTree = %+v, %v; want %+v: the holders sorted by id", got, err, want)
		}
	})
	t.Run("unknown root", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectBegin()
		m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-9", "app.workspaces", int64(120_000_000)).WillReturnRows(sqlmock.NewRows(pendingColumns))
		m.mock.ExpectRollback()
		_, err := m.RemoveTree(ctx, "ws-9")
		wantStoreErr(t, err, `store: remove tree "ws-9": `, ErrNotFound)
	})
	for _, tt := range []struct {
		name   string
		expect func(m mockedStore)
	}{
		{"begin", func(m mockedStore) { m.mock.ExpectBegin().WillReturnError(errBoom) }},
		{"first walk", func(m mockedStore) {
			m.mock.ExpectBegin()
			m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnError(errBoom)
			m.mock.ExpectRollback()
		}},
		{"second walk", func(m mockedStore) {
			m.mock.ExpectBegin()
			m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnRows(tree())
			m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnRows(tree().RowError(1, errBoom))
			m.mock.ExpectRollback()
		}},
		{"commit", func(m mockedStore) {
			m.mock.ExpectBegin()
			m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnRows(tree())
			m.mock.ExpectQuery(m.want("remove_tree")).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnRows(tree())
			m.mock.ExpectCommit().WillReturnError(errBoom)
		}},
	} {
		t.Run(tt.name+" fails", func(t *testing.T) {
			m := mockStore(t)
			tt.expect(m)
			got, err := m.RemoveTree(ctx, "ws-1")
			if got != nil {
				t.Fatalf("RemoveTree on error = %+v, want nil", got)
			}
			wantStoreErr(t, err, `store: remove tree "ws-1": `, errBoom)
		})
	}
}

// Without a parent column the tree is its root: one statement, no
// transaction.
func TestSQLRemoveRoot(t *testing.T) {
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tbl := mockTable
	tbl.Parent = ""
	st, err := NewSQL(db, tbl, WithSchema("leakless"))
	if err != nil {
		t.Fatal(err)
	}
	mock.ExpectQuery(st.sql.removeTree).WithArgs("ws-1", "app.workspaces", int64(120_000_000)).WillReturnRows(
		sqlmock.NewRows(pendingColumns).AddRow("ws-1", "i-1", 1, "boom", 0))
	got, err := st.RemoveTree(context.Background(), "ws-1")
	want := []Pending{{ResourceID: "ws-1", InstanceID: "i-1", Attempts: 1, LastError: "boom"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("RemoveTree = %+v, %v; want %+v", got, err, want)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func TestSQLStopping(t *testing.T) {
	ctx := context.Background()
	ps := []Pending{{ResourceID: "ws-1", InstanceID: "i-1"}, {ResourceID: "ws-2", InstanceID: "i-2"}}
	t.Run("one statement per row", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectExec(m.want("stopping")).WithArgs("app.workspaces", "ws-1", "i-1", int64(120_000_000)).WillReturnResult(sqlmock.NewResult(0, 1))
		m.mock.ExpectExec(m.want("stopping")).WithArgs("app.workspaces", "ws-2", "i-2", int64(120_000_000)).WillReturnResult(sqlmock.NewResult(0, 0))
		if err := m.Stopping(ctx, ps...); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("error", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectExec(m.want("stopping")).WithArgs("app.workspaces", "ws-1", "i-1", int64(120_000_000)).WillReturnError(errBoom)
		wantStoreErr(t, m.Stopping(ctx, ps...), `store: stopping "ws-1": `, errBoom)
	})
	t.Run("no grace sends nothing", func(t *testing.T) {
		m := mockStore(t)
		m.grace = 0
		if err := m.Stopping(ctx, ps...); err != nil {
			t.Fatal(err)
		}
	})
}

var resourceColumns = []string{"kind", "id", "now"}

func TestSQLKnownReadsProvisioningBeforeHeld(t *testing.T) {
	m := mockStore(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	m.mock.ExpectQuery(m.want("resources")).WithArgs(`{"WS-1","ws-\"2\""}`, "app.workspaces").WillReturnRows(
		sqlmock.NewRows(resourceColumns).AddRow("provisioning", "WS-1", nil).AddRow("now", nil, now).AddRow("removed", `ws-"2"`, nil))
	m.mock.ExpectQuery(m.want("held")).WithArgs(`{"i-1","i-2"}`).WillReturnRows(
		sqlmock.NewRows([]string{"instance_id"}).AddRow("i-2"))
	// Duplicates, empty and unstorable ids are not sent.
	k, err := m.Known(context.Background(), []string{`ws-"2"`, "WS-1", "WS-1", "", "x\x00"}, []string{"i-2", "i-1", "\xff"})
	if err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(k.Provisioning, map[string]bool{"WS-1": true}) || !mapsEqual(k.Held, map[string]bool{"i-2": true}) ||
		!mapsEqual(k.Removed, map[string]bool{`ws-"2"`: true}) || !k.Now.Equal(now) {
		t.Fatalf("Known = %+v", k)
	}
}

// The database's clock is read even when no resource id is asked about,
// and with several chunks Now is the first chunk's.
func TestSQLKnownNow(t *testing.T) {
	first := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	t.Run("no ids", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectQuery(m.want("resources")).WithArgs(`{}`, "app.workspaces").WillReturnRows(
			sqlmock.NewRows(resourceColumns).AddRow("now", nil, first))
		k, err := m.Known(context.Background(), nil, nil)
		if err != nil || !k.Now.Equal(first) {
			t.Fatalf("Known(nil, nil) = %+v, %v; want Now %v", k, err, first)
		}
	})
	t.Run("chunks", func(t *testing.T) {
		m := mockStore(t)
		m.chunk = 1
		m.mock.ExpectQuery(m.want("resources")).WithArgs(`{"a"}`, "app.workspaces").WillReturnRows(
			sqlmock.NewRows(resourceColumns).AddRow("now", nil, first))
		m.mock.ExpectQuery(m.want("resources")).WithArgs(`{"b"}`, "app.workspaces").WillReturnRows(
			sqlmock.NewRows(resourceColumns).AddRow("now", nil, first.Add(time.Second)))
		k, err := m.Known(context.Background(), []string{"b", "a"}, nil)
		if err != nil || !k.Now.Equal(first) {
			t.Fatalf("Known = %+v, %v; want Now %v, the first chunk's", k, err, first)
		}
	})
}

func TestSQLKnownErrors(t *testing.T) {
	t.Run("resources", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectQuery(m.want("resources")).WithArgs(`{"ws-1"}`, "app.workspaces").WillReturnError(errBoom)
		_, err := m.Known(context.Background(), []string{"ws-1"}, []string{"i-1"})
		wantStoreErr(t, err, "store: known: resources: ", errBoom)
	})
	t.Run("held", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectQuery(m.want("resources")).WithArgs(`{}`, "app.workspaces").WillReturnRows(
			sqlmock.NewRows(resourceColumns).AddRow("now", nil, time.Now()))
		m.mock.ExpectQuery(m.want("held")).WithArgs(`{"i-1"}`).WillReturnRows(
			sqlmock.NewRows([]string{"instance_id"}).AddRow("i-1").RowError(0, errBoom))
		k, err := m.Known(context.Background(), nil, []string{"i-1"})
		wantStoreErr(t, err, "store: known: held: ", errBoom)
		if k.Held != nil || k.Provisioning != nil || k.Removed != nil || !k.Now.IsZero() {
			t.Fatalf("Known on error = %+v, want zero", k)
		}
	})
}

func TestSQLMigrate(t *testing.T) {
	// Before the versions: the lock, the schema and the version table,
	// then the read of the database's version.
	before := func(m mockedStore) []string {
		return []string{migrate.LockSQL, `CREATE SCHEMA IF NOT EXISTS "leakless"`, createMigrationsTable}
	}
	expectVersions := func(m mockedStore, from int) {
		for _, v := range m.mig.Versions[from:] {
			for _, q := range v.Stmts {
				m.mock.ExpectExec(q).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
			}
			m.mock.ExpectExec(`INSERT INTO "leakless"."leakless_migrations" (component, version, name) VALUES ($1, $2, $3) ON CONFLICT (component, version) DO NOTHING`).
				WithArgs("store:app.workspaces", v.Version, v.Name).WillReturnResult(sqlmock.NewResult(0, 1))
		}
	}
	expectVersion := func(m mockedStore, v int) {
		m.mock.ExpectQuery(`SELECT COALESCE(max(version), 0) FROM "leakless"."leakless_migrations" WHERE component = $1`).
			WithArgs("store:app.workspaces").WillReturnRows(sqlmock.NewRows([]string{"version"}).AddRow(v))
	}
	t.Run("commits every version in one transaction", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectBegin()
		for _, q := range before(m) {
			m.mock.ExpectExec(q).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		}
		expectVersion(m, 0)
		expectVersions(m, 0)
		m.mock.ExpectCommit()
		if err := m.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("applies only the versions the database lacks", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectBegin()
		for _, q := range before(m) {
			m.mock.ExpectExec(q).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		}
		expectVersion(m, 1)
		expectVersions(m, 1)
		m.mock.ExpectCommit()
		if err := m.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("rolls back on a failed statement", func(t *testing.T) {
		m := mockStore(t)
		qs := before(m)
		m.mock.ExpectBegin()
		m.mock.ExpectExec(qs[0]).WillReturnResult(sqlmock.NewResult(0, 0))
		m.mock.ExpectExec(qs[1]).WillReturnError(errBoom)
		m.mock.ExpectRollback()
		wantStoreErr(t, m.Migrate(context.Background()), "store: migrate: ", errBoom)
	})
	t.Run("begin fails", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectBegin().WillReturnError(errBoom)
		wantStoreErr(t, m.Migrate(context.Background()), "store: migrate: ", errBoom)
	})
	t.Run("commit fails", func(t *testing.T) {
		m := mockStore(t)
		m.mock.ExpectBegin()
		for _, q := range before(m) {
			m.mock.ExpectExec(q).WillReturnResult(sqlmock.NewResult(0, 0))
		}
		expectVersion(m, 0)
		expectVersions(m, 0)
		m.mock.ExpectCommit().WillReturnError(errBoom)
		wantStoreErr(t, m.Migrate(context.Background()), "store: migrate: ", errBoom)
	})
}

// createMigrationsTable is the version table's DDL in the mocked store's
// schema.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS "leakless"."leakless_migrations" (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)`

func TestSQLLease(t *testing.T) {
	m := mockStore(t)
	ctx := context.Background()
	l := m.Lease("sweeper", 1500*time.Millisecond)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	granted := sqlmock.NewRows([]string{"term", "now", "expires_at"}).AddRow(7, now, now.Add(1500*time.Millisecond))
	m.mock.ExpectQuery(m.want("lead")).WithArgs("sweeper", l.holder, int64(1_500_000)).WillReturnRows(granted)
	m.mock.ExpectQuery(m.want("lead")).WithArgs("sweeper", l.holder, int64(1_500_000)).WillReturnRows(
		sqlmock.NewRows([]string{"term", "now", "expires_at"}))
	m.mock.ExpectQuery(m.want("lead")).WithArgs("sweeper", l.holder, int64(1_500_000)).WillReturnError(errBoom)
	m.mock.ExpectExec(m.want("release")).WithArgs("sweeper", l.holder).WillReturnResult(sqlmock.NewResult(0, 1))
	m.mock.ExpectExec(m.want("release")).WithArgs("sweeper", l.holder).WillReturnError(errBoom)

	if ok, err := l.Lead(ctx); !ok || err != nil {
		t.Fatalf("Lead with a row returned = %v, %v; want true", ok, err)
	}
	if ok, err := l.Lead(ctx); ok || err != nil {
		t.Fatalf("Lead with no row returned = %v, %v; want false and no error", ok, err)
	}
	ok, err := l.Lead(ctx)
	if ok {
		t.Fatal("Lead on error = true")
	}
	wantStoreErr(t, err, `store: lease "sweeper": lead: `, errBoom)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wantStoreErr(t, l.Release(ctx), `store: lease "sweeper": release: `, errBoom)
}

func TestLeaseRejectsBadSettings(t *testing.T) {
	m := mockStore(t) // no statement may reach the database
	for _, l := range []*Lease{m.Lease("", time.Minute), m.Lease("sweeper", 0), m.Lease("sweeper", time.Microsecond)} {
		if ok, err := l.Lead(context.Background()); ok || !errors.Is(err, ErrConfig) {
			t.Errorf("Lead(%q, %v) = %v, %v; want false and ErrConfig", l.name, l.ttl, ok, err)
		}
		if err := l.Release(context.Background()); !errors.Is(err, ErrConfig) {
			t.Errorf("Release(%q, %v) = %v; want ErrConfig", l.name, l.ttl, err)
		}
	}
	if a, b := m.Lease("sweeper", time.Minute), m.Lease("sweeper", time.Minute); a.holder == b.holder {
		t.Fatal("two leases share a holder token")
	}
}
