package backend_test

import (
	"context"
	"flag"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/examples/internal/backend"
	"github.com/leakless/leakless/internal/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlagsFromEnvironmentAndOwnerTags(t *testing.T) {
	var f backend.Flags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vars := map[string]string{"DATABASE_URL": "postgres://x", "EC2_ENDPOINT": "aws"}
	f.Register(fs, func(k string) string { return vars[k] })
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if f.DatabaseURL != "postgres://x" || f.EC2Endpoint != "aws" || f.Owner != backend.DefaultOwnerTag {
		t.Errorf("flags %+v, want the environment's values and the default owner", f)
	}
	tags, err := f.OwnerTags()
	if err != nil || len(tags) != 1 || tags["leakless:owner"] != "workspaces-example" {
		t.Errorf("OwnerTags = %v, %v", tags, err)
	}
	for _, bad := range []string{"", "team", "=x", "team=", " = "} {
		f.Owner = bad
		if _, err := f.OwnerTags(); err == nil {
			t.Errorf("OwnerTags(%q): nil error, want one", bad)
		}
	}
}

func TestOpenEC2RejectsEndpointsThatAreNotURLs(t *testing.T) {
	owner := map[string]string{"k": "v"}
	for _, bad := range []string{"localhost:5000", "ftp://x", "http://", "::"} {
		if _, err := backend.OpenEC2(context.Background(), bad, owner, nil); err == nil {
			t.Errorf("OpenEC2(%q): nil error, want one", bad)
		}
	}
	e, err := backend.OpenEC2(context.Background(), "", owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Fake == nil || e.Endpoint != "embedded" {
		t.Errorf("empty endpoint: Fake %v, Endpoint %q; want the embedded fake", e.Fake, e.Endpoint)
	}
	if _, err := backend.OpenEC2(context.Background(), "", nil, nil); err == nil {
		t.Error("OpenEC2 without owner tags: nil error, want one")
	}
}

// A database opened in a schema of its own creates every table there and
// drops the schema on Close.
func TestOpenDatabaseInASchemaDropsIt(t *testing.T) {
	ctx := context.Background()
	url := pgtest.ServerURL(t)
	schema := "backend_test_" + workspaces.NewID()[:8]
	db, err := backend.OpenDatabase(ctx, backend.DatabaseOptions{URL: url, Schema: schema, DropSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Rows.Insert(ctx, workspaces.NewID(), ""); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tables := func() int {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := tables(); n < 3 {
		t.Errorf("tables in %s: %d, want the workspaces, store and events tables", schema, n)
	}
	if err := db.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT exists(SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("schema %s still exists after Close", schema)
	}
}
