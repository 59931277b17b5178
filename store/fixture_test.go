package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/internal/pgtest"
)

// fixture is one Store implementation under test, with the host's side of
// its table: the contract suite edits rows as the host's code would.
type fixture struct {
	name string
	// open returns an empty table and a Store over it, built with opts;
	// withParent says whether the Table names the parent column.
	open func(t *testing.T, withParent bool, opts ...Option) (Store, hostTable)
	// id is the i-th resource id in the id column's type. Ids sort the
	// same as text and in their own type.
	id func(i int) string
}

// hostTable is the host's own access to its table. An empty Parent or
// InstanceID is NULL.
type hostTable interface {
	put(t *testing.T, r Row)
	get(t *testing.T, id string) (Row, bool)
	del(t *testing.T, id string)
}

func fixtures() []fixture {
	fs := []fixture{{
		name: "memory",
		open: func(t *testing.T, withParent bool, opts ...Option) (Store, hostTable) {
			m := NewMemory(testTable(withParent), opts...)
			return m, memoryHost{m}
		},
		id: textID,
	}}
	for _, typ := range []struct {
		sql string
		id  func(int) string
	}{{"text", textID}, {"uuid", uuidID}, {"bigint", bigintID}} {
		fs = append(fs,
			fixture{name: "pgx/" + typ.sql, id: typ.id, open: func(t *testing.T, withParent bool, opts ...Option) (Store, hostTable) {
				db := pgtest.Open(t)
				createHostTable(t, db.Pool, typ.sql)
				st, err := NewPgx(db.Pool, testTable(withParent), opts...)
				return migrated(t, st, err), pgHost{pool: db.Pool}
			}},
			fixture{name: "sql/" + typ.sql, id: typ.id, open: func(t *testing.T, withParent bool, opts ...Option) (Store, hostTable) {
				db := pgtest.Open(t)
				createHostTable(t, db.Pool, typ.sql)
				st, err := NewSQL(db.SQL, testTable(withParent), opts...)
				return migrated(t, st, err), pgHost{pool: db.Pool}
			}},
		)
	}
	// A host whose instance column is NOT NULL DEFAULT '' records "no
	// instance" as ''.
	for _, driver := range drivers {
		fs = append(fs, fixture{name: driver + "-not-null-instance/text", id: textID, open: func(t *testing.T, withParent bool, opts ...Option) (Store, hostTable) {
			db := pgtest.Open(t)
			createHostTableWith(t, db.Pool, "text", "text NOT NULL DEFAULT ''")
			return newStoreOn(t, driver, db, testTable(withParent), opts...), pgHost{pool: db.Pool, notNull: true}
		}})
	}
	// Behind a transaction pooler a pgx host switches off prepared
	// statements; every statement must work with client-side arguments.
	fs = append(fs, fixture{name: "pgx-simple-protocol/uuid", id: uuidID, open: func(t *testing.T, withParent bool, opts ...Option) (Store, hostTable) {
		db := pgtest.Open(t)
		createHostTable(t, db.Pool, "uuid")
		st, err := NewPgx(simpleProtocolPool(t, db), testTable(withParent), opts...)
		return migrated(t, st, err), pgHost{pool: db.Pool}
	}})
	return fs
}

// simpleProtocolPool is a second pool on db's schema that sends every
// statement with client-side arguments and no prepared statement, as a
// host behind a transaction pooler configures pgx.
func simpleProtocolPool(t *testing.T, db *pgtest.DB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func textID(i int) string   { return fmt.Sprintf("ws-%02d", i) }
func uuidID(i int) string   { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
func bigintID(i int) string { return fmt.Sprint(100 + i) }

// testTable is the host's table as the tests create it.
func testTable(withParent bool) Table {
	t := Table{Name: "workspaces", ID: "id", Status: "status", InstanceID: "instance_id", Removed: "removed"}
	if withParent {
		t.Parent = "parent_id"
	}
	return t
}

// createHostTable creates the host's table with ids of the given SQL type,
// in the test's schema.
func createHostTable(t testing.TB, pool *pgxpool.Pool, idType string) {
	t.Helper()
	createHostTableWith(t, pool, idType, "text")
}

// createHostTableWith is createHostTable with the instance column declared
// as instanceType.
func createHostTableWith(t testing.TB, pool *pgxpool.Pool, idType, instanceType string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), fmt.Sprintf(`CREATE TABLE workspaces (
		id          %[1]s PRIMARY KEY,
		parent_id   %[1]s,
		status      text NOT NULL,
		instance_id %[2]s,
		created_at  timestamptz NOT NULL DEFAULT now()
	);
	CREATE INDEX workspaces_parent_id ON workspaces (parent_id)`, idType, instanceType))
	if err != nil {
		t.Fatalf("create host table: %v", err)
	}
}

func migrated(t testing.TB, st *Postgres, err error) *Postgres {
	t.Helper()
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st
}

type memoryHost struct{ m *Memory }

func (h memoryHost) put(_ *testing.T, r Row) { h.m.Put(r) }

func (h memoryHost) get(_ *testing.T, id string) (Row, bool) { return h.m.Get(id) }

func (h memoryHost) del(_ *testing.T, id string) { h.m.Delete(id) }

// pgHost edits the table through its own pool, whichever driver the store
// under test uses. With notNull the instance column is NOT NULL and no
// instance is ”, else NULL.
type pgHost struct {
	pool    *pgxpool.Pool
	notNull bool
}

func (h pgHost) put(t *testing.T, r Row) {
	t.Helper()
	none := "NULL"
	if h.notNull {
		none = "''"
	}
	_, err := h.pool.Exec(context.Background(), `INSERT INTO workspaces AS w (id, parent_id, status, instance_id)
		VALUES ($1, $2, $3, COALESCE(NULLIF($4::text, ''), `+none+`))
		ON CONFLICT (id) DO UPDATE SET parent_id = EXCLUDED.parent_id, status = EXCLUDED.status, instance_id = EXCLUDED.instance_id`,
		r.ID, nullIfEmpty(r.Parent), r.Status, r.InstanceID)
	if err != nil {
		t.Fatalf("host put %+v: %v", r, err)
	}
}

func (h pgHost) get(t *testing.T, id string) (Row, bool) {
	t.Helper()
	rows, err := h.pool.Query(context.Background(), `SELECT id::text, COALESCE(parent_id::text, ''), status, COALESCE(instance_id, '')
		FROM workspaces WHERE id = $1`, id)
	if err != nil {
		t.Fatalf("host get %s: %v", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			t.Fatalf("host get %s: %v", id, err)
		}
		return Row{}, false
	}
	var r Row
	if err := rows.Scan(&r.ID, &r.Parent, &r.Status, &r.InstanceID); err != nil {
		t.Fatalf("host get %s: %v", id, err)
	}
	return r, true
}

func (h pgHost) del(t *testing.T, id string) {
	t.Helper()
	if _, err := h.pool.Exec(context.Background(), `DELETE FROM workspaces WHERE id = $1`, id); err != nil {
		t.Fatalf("host delete %s: %v", id, err)
	}
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
