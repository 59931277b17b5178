package pgtest_test

import (
	"context"
	"testing"

	"github.com/leakless/leakless/internal/pgtest"
)

func TestOpenIsolatesSchemas(t *testing.T) {
	a := pgtest.Open(t)
	b := pgtest.Open(t)
	if a.Schema == b.Schema {
		t.Fatalf("two tests share schema %q", a.Schema)
	}
	ctx := context.Background()
	if _, err := a.Pool.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SQL.ExecContext(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatalf("same table name in the second schema: %v", err)
	}
	var schema string
	if err := a.SQL.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema != a.Schema {
		t.Fatalf("database/sql handle is on schema %q, want %q", schema, a.Schema)
	}
}
