package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/internal/pgtest"
)

// The benchmarks share one host table of a million rows, built on first use
// with generate_series (a few seconds) and dropped when the test binary
// exits: it is never built by the ordinary test run. Half of it is removed
// rows whose instances were reaped long ago, half live rows holding an
// instance; 100 rows toggle between pending and reaped, and 1,000 rows form
// one tree for RemoveTree.
const (
	benchRows    = 1_000_000
	benchPending = 100
	benchTree    = 1_000 // nodes, ten children each, rooted at tree-0
)

var bench struct {
	once   sync.Once
	err    error
	base   string // server URL
	schema string
	pool   *pgxpool.Pool
	st     *Postgres
}

func benchStore(b *testing.B) (*Postgres, *pgxpool.Pool) {
	b.Helper()
	base := pgtest.ServerURL(b)
	bench.once.Do(func() { bench.err = buildBenchTable(base) })
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.st, bench.pool
}

func buildBenchTable(base string) error {
	ctx := context.Background()
	token := make([]byte, 4)
	_, _ = rand.Read(token)
	bench.base, bench.schema = base, "leakless_bench_"+hex.EncodeToString(token)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+bench.schema); err != nil {
		return err
	}
	bench.pool, err = pgxpool.New(ctx, pgtest.WithSearchPath(base, bench.schema))
	if err != nil {
		return err
	}
	_, err = bench.pool.Exec(ctx, fmt.Sprintf(`
CREATE TABLE workspaces (
    id          text PRIMARY KEY,
    parent_id   text,
    status      text NOT NULL,
    instance_id text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO workspaces (id, status, instance_id)
SELECT 'ws-' || g,
       CASE WHEN g %% 2 = 0 THEN 'removed' ELSE 'active' END,
       CASE WHEN g %% 2 = 0 THEN NULL ELSE 'i-' || g END
FROM generate_series(1, %[1]d) g;
INSERT INTO workspaces (id, status)
SELECT 'pend-' || g, 'removed' FROM generate_series(1, %[2]d) g;
INSERT INTO workspaces (id, parent_id, status, instance_id)
SELECT 'tree-' || g, CASE WHEN g > 0 THEN 'tree-' || (g - 1) / 10 END, 'active', 'i-tree-' || g
FROM generate_series(0, %[3]d - 1) g;
CREATE INDEX workspaces_parent_id ON workspaces (parent_id);
CREATE UNIQUE INDEX workspaces_instance_id ON workspaces (instance_id)`, benchRows-benchPending-benchTree, benchPending, benchTree))
	if err != nil {
		return err
	}
	if _, err := bench.pool.Exec(ctx, `VACUUM ANALYZE workspaces`); err != nil {
		return err
	}
	bench.st, err = NewPgx(bench.pool, testTable(true))
	if err != nil {
		return err
	}
	return bench.st.Migrate(ctx)
}

// dropBenchTable drops the benchmarks' schema, if one was built.
func dropBenchTable() {
	if bench.pool == nil {
		return
	}
	bench.pool.Close()
	ctx := context.Background()
	if admin, err := pgx.Connect(ctx, bench.base); err == nil {
		_, _ = admin.Exec(ctx, "DROP SCHEMA "+bench.schema+" CASCADE")
		_ = admin.Close(ctx)
	}
}

func benchExec(b *testing.B, pool *pgxpool.Pool, sql string) {
	b.Helper()
	if _, err := pool.Exec(context.Background(), sql); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
}

// BenchmarkPending is Pending(100) on the million-row table, with the
// partial index Migrate creates and without it, with 0 and 100 rows due.
func BenchmarkPending(b *testing.B) {
	for _, index := range []bool{true, false} {
		for _, pending := range []int{0, benchPending} {
			b.Run(fmt.Sprintf("index=%v/pending=%d", index, pending), func(b *testing.B) {
				st, pool := benchStore(b)
				ctx := context.Background()
				if index {
					for _, m := range st.Migrations() {
						benchExec(b, pool, m.SQL)
					}
				} else {
					benchExec(b, pool, `DROP INDEX IF EXISTS leakless_unreaped_workspaces`)
				}
				holds := "NULL"
				if pending > 0 {
					holds = "'i-' || id"
				}
				benchExec(b, pool, `UPDATE workspaces SET instance_id = `+holds+` WHERE id LIKE 'pend-%'`)
				benchExec(b, pool, `VACUUM ANALYZE workspaces`)

				for b.Loop() {
					ps, err := st.Pending(ctx, benchPending)
					if err != nil {
						b.Fatal(err)
					}
					if len(ps) != pending {
						b.Fatalf("Pending returned %d rows, want %d", len(ps), pending)
					}
				}
			})
		}
	}
}

// BenchmarkRemoveTree removes a 1,000-node tree whose every node holds an
// instance: fresh (every node live beforehand) and re-driven (every node
// already removed, as on a retried delete).
func BenchmarkRemoveTree(b *testing.B) {
	for _, fresh := range []bool{true, false} {
		name := "redrive"
		if fresh {
			name = "fresh"
		}
		b.Run(name, func(b *testing.B) {
			st, pool := benchStore(b)
			ctx := context.Background()
			for _, m := range st.Migrations() {
				benchExec(b, pool, m.SQL)
			}
			reset := `UPDATE workspaces SET status = 'active' WHERE id LIKE 'tree-%'`
			if !fresh {
				reset = `UPDATE workspaces SET status = 'removed' WHERE id LIKE 'tree-%'`
			}
			benchExec(b, pool, reset)
			benchExec(b, pool, `VACUUM ANALYZE workspaces`) // earlier runs' dead row versions
			b.ResetTimer()
			for range b.N {
				if fresh {
					b.StopTimer()
					benchExec(b, pool, reset)
					b.StartTimer()
				}
				ps, err := st.RemoveTree(ctx, "tree-0")
				if err != nil {
					b.Fatal(err)
				}
				if len(ps) != benchTree {
					b.Fatalf("RemoveTree returned %d holders, want %d", len(ps), benchTree)
				}
			}
		})
	}
}

// BenchmarkKnown is Known over 100 resource ids (half live rows holding an
// instance, half removed rows) and their 100 instance ids, on the
// million-row table: the read that protects instances from row-gone
// reaping, once per sweep pass.
func BenchmarkKnown(b *testing.B) {
	st, _ := benchStore(b)
	ctx := context.Background()
	var resources, instances []string
	for i := 1; i <= 100; i++ {
		resources = append(resources, fmt.Sprint("ws-", i))
		instances = append(instances, fmt.Sprint("i-", i))
	}
	for b.Loop() {
		k, err := st.Known(ctx, resources, instances)
		if err != nil {
			b.Fatal(err)
		}
		if len(k.Removed) != 50 || len(k.Held) != 50 {
			b.Fatalf("Known found %d removed and %d held, want 50 and 50", len(k.Removed), len(k.Held))
		}
	}
}
