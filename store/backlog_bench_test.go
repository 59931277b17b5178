package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/internal/pgtest"
)

// The backlog benchmark's host table: backlogRows removed rows that still
// hold an instance, and backlogDue rows that hold one only in the shape
// that needs them. Like the million-row table it is built on first use and
// dropped when the test binary exits.
const (
	backlogRows = 100_000
	backlogDue  = 500
	backlogPage = 500
)

// firstPendingSQL is the first release's Pending statement, verbatim: one
// LEFT JOIN of the whole pending index to leakless_attempts, ordered by
// last attempt. It is the baseline the O(page) statements replace.
const firstPendingSQL = `SELECT h.{{id}}::text, h.{{instance}}::text, COALESCE(a.attempts, 0), COALESCE(a.last_error, ''),
       CASE WHEN a.not_found_since IS NULL THEN 0
       ELSE GREATEST((extract(epoch FROM now() - a.not_found_since) * 1000000)::bigint, 1) END
FROM {{table}} h
LEFT JOIN {{attempts}} a
       ON a.host_table = $1 AND a.resource_id = h.{{id}}::text AND a.instance_id = h.{{instance}}
WHERE h.{{status}} = {{removed}} AND h.{{instance}} IS NOT NULL AND h.{{instance}} <> ''
  AND (a.next_at IS NULL OR a.next_at <= now())
ORDER BY COALESCE(a.last_at, '-infinity'), h.{{id}}
LIMIT $2`

var backlog struct {
	once   sync.Once
	err    error
	base   string
	schema string
	pool   *pgxpool.Pool
	st     *Postgres
	first  string // firstPendingSQL expanded for the table
}

func backlogStore(b *testing.B) *Postgres {
	b.Helper()
	base := pgtest.ServerURL(b)
	backlog.once.Do(func() { backlog.err = buildBacklogTable(base) })
	if backlog.err != nil {
		b.Fatal(backlog.err)
	}
	return backlog.st
}

func buildBacklogTable(base string) error {
	ctx := context.Background()
	token := make([]byte, 4)
	_, _ = rand.Read(token)
	backlog.base, backlog.schema = base, "leakless_backlog_"+hex.EncodeToString(token)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+backlog.schema); err != nil {
		return err
	}
	backlog.pool, err = pgxpool.New(ctx, pgtest.WithSearchPath(base, backlog.schema))
	if err != nil {
		return err
	}
	_, err = backlog.pool.Exec(ctx, fmt.Sprintf(`
CREATE TABLE workspaces (
    id          text PRIMARY KEY,
    parent_id   text,
    status      text NOT NULL,
    instance_id text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO workspaces (id, status, instance_id)
SELECT 'ws-' || lpad(g::text, 6, '0'), 'removed', 'i-' || lpad(g::text, 17, '0')
FROM generate_series(1, %[1]d) g;
INSERT INTO workspaces (id, status)
SELECT 'due-' || lpad(g::text, 3, '0'), 'removed' FROM generate_series(1, %[2]d) g;
CREATE INDEX workspaces_parent_id ON workspaces (parent_id);
CREATE UNIQUE INDEX workspaces_instance_id ON workspaces (instance_id)`, backlogRows, backlogDue))
	if err != nil {
		return err
	}
	t := testTable(true)
	if backlog.st, err = NewPgx(backlog.pool, t); err != nil {
		return err
	}
	if err := backlog.st.Migrate(ctx); err != nil {
		return err
	}
	n, err := t.quote("")
	if err != nil {
		return err
	}
	backlog.first = strings.NewReplacer(
		"{{table}}", n.table, "{{id}}", n.id, "{{status}}", n.status,
		"{{instance}}", n.instance, "{{removed}}", n.removed, "{{attempts}}", n.attempts,
	).Replace(firstPendingSQL)
	return nil
}

// dropBacklogTable drops the backlog benchmark's schema, if one was built.
func dropBacklogTable() {
	if backlog.pool == nil {
		return
	}
	backlog.pool.Close()
	ctx := context.Background()
	if admin, err := pgx.Connect(ctx, backlog.base); err == nil {
		_, _ = admin.Exec(ctx, "DROP SCHEMA "+backlog.schema+" CASCADE")
		_ = admin.Close(ctx)
	}
}

// backlogShape puts the table and leakless_attempts into one shape.
type backlogShape struct {
	name string
	// backingOff and due are the delays recorded by Failed on the
	// backlogRows rows and on the backlogDue extra rows; a negative delay
	// records nothing, and the extra rows hold no instance when due is
	// negative.
	backingOff, due time.Duration
}

var backlogShapes = []backlogShape{
	// Removed by the host's own UPDATE: no row has a record.
	{name: "unrecorded", backingOff: -1, due: -1},
	// Every row failed once with no delay: all recorded, all due.
	{name: "recorded-due", backingOff: 0, due: -1},
	// Every row backing off for an hour, and 500 more failed and due.
	{name: "backing-off", backingOff: time.Hour, due: 0},
}

func (s backlogShape) apply(b *testing.B, st *Postgres) {
	b.Helper()
	ctx := context.Background()
	holds := "NULL"
	if s.due >= 0 {
		holds = "'i-due-' || id"
	}
	benchExec(b, backlog.pool, `UPDATE workspaces SET instance_id = `+holds+` WHERE id LIKE 'due-%'`)
	benchExec(b, backlog.pool, `DELETE FROM leakless_attempts`)
	record := func(like string, delay time.Duration) {
		if delay < 0 {
			return
		}
		rows, err := backlog.pool.Query(ctx, `SELECT id, instance_id FROM workspaces WHERE id LIKE $1 ORDER BY id`, like)
		if err != nil {
			b.Fatal(err)
		}
		ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Pending, error) {
			var p Pending
			return p, r.Scan(&p.ResourceID, &p.InstanceID)
		})
		if err != nil {
			b.Fatal(err)
		}
		for chunk := range chunks(ps, 5000) {
			fs := make([]Failure, len(chunk))
			for i, p := range chunk {
				fs[i] = Failure{Pending: p, Err: errors.New("stop failed"), Delay: delay}
			}
			if err := st.FailedAll(ctx, fs); err != nil {
				b.Fatal(err)
			}
		}
	}
	record("ws-%", s.backingOff)
	record("due-%", s.due)
	benchExec(b, backlog.pool, `VACUUM ANALYZE workspaces`)
	benchExec(b, backlog.pool, `VACUUM ANALYZE leakless_attempts`)
}

// chunks yields ps in slices of at most n.
func chunks[T any](ps []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(ps) > 0 {
			k := min(n, len(ps))
			if !yield(ps[:k]) {
				return
			}
			ps = ps[k:]
		}
	}
}

// BenchmarkPendingBacklog is Pending(500) with 100,000 removed rows still
// holding an instance, in three shapes (see backlogShapes), against the
// first release's single statement on the same table in the same run.
// Every call must return a full page.
func BenchmarkPendingBacklog(b *testing.B) {
	for _, shape := range backlogShapes {
		b.Run("shape="+shape.name, func(b *testing.B) {
			st := backlogStore(b)
			shape.apply(b, st)
			ctx := context.Background()
			b.Run("query=new", func(b *testing.B) {
				for b.Loop() {
					ps, err := st.Pending(ctx, backlogPage)
					if err != nil {
						b.Fatal(err)
					}
					if len(ps) != backlogPage {
						b.Fatalf("Pending returned %d rows, want %d", len(ps), backlogPage)
					}
				}
			})
			b.Run("query=first-release", func(b *testing.B) {
				for b.Loop() {
					rows, err := backlog.pool.Query(ctx, backlog.first, st.key, backlogPage)
					if err != nil {
						b.Fatal(err)
					}
					ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Pending, error) {
						var p Pending
						var notFoundFor int64
						err := r.Scan(&p.ResourceID, &p.InstanceID, &p.Attempts, &p.LastError, &notFoundFor)
						p.NotFoundFor = time.Duration(notFoundFor) * time.Microsecond
						return p, err
					})
					if err != nil {
						b.Fatal(err)
					}
					if len(ps) != backlogPage {
						b.Fatalf("first release's query returned %d rows, want %d", len(ps), backlogPage)
					}
				}
			})
		})
	}
}
