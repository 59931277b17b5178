package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// DB is one test's view of the server: a schema of its own, reached through
// a pgx pool and a database/sql handle whose search_path is that schema.
type DB struct {
	Pool   *pgxpool.Pool
	SQL    *sql.DB
	URL    string // connection string whose search_path is Schema
	Schema string
}

// New returns a pgx pool on a fresh schema, dropped when the test ends.
func New(t testing.TB) *pgxpool.Pool { return Open(t).Pool }

// NewSQL returns a *sql.DB (pgx's database/sql driver) on a fresh schema,
// dropped when the test ends.
func NewSQL(t testing.TB) *sql.DB { return Open(t).SQL }

// Open creates a fresh schema and returns both handles on it. The schema,
// the pool and the *sql.DB are closed and dropped when the test ends.
func Open(t testing.TB) *DB {
	t.Helper()
	base := ServerURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable(t, fmt.Sprintf("connect %s: %v", redact(base), err))
	}
	schema := "lt_" + randomHex(6)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		t.Fatalf("pgtest: create schema: %v", err)
	}
	admin.Close(ctx)

	u := WithSearchPath(base, schema)
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		t.Fatalf("pgtest: parse url: %v", err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	connCfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatalf("pgtest: parse url: %v", err)
	}
	sqlDB := stdlib.OpenDB(*connCfg)
	sqlDB.SetMaxOpenConns(8)

	t.Cleanup(func() {
		_ = sqlDB.Close()
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return &DB{Pool: pool, SQL: sqlDB, URL: u, Schema: schema}
}

// WithSearchPath returns connURL with its search_path set to schema.
func WithSearchPath(connURL, schema string) string {
	u, err := url.Parse(connURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// keyword/value form
		return strings.TrimSpace(connURL) + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
)

// ServerURL returns the URL of the server the tests use, starting a
// throwaway cluster if no URL is configured. It skips (or, under CI, fails)
// the test when there is no server to be had.
func ServerURL(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		for _, k := range []string{"LEAKLESS_TEST_DATABASE_URL", "DATABASE_URL"} {
			if v := os.Getenv(k); v != "" {
				serverURL = v
				return
			}
		}
		serverURL, serverErr = startCluster()
	})
	if serverErr != nil {
		unavailable(t, serverErr.Error())
	}
	return serverURL
}

// unavailable skips the test, or fails it under CI.
func unavailable(t testing.TB, why string) {
	t.Helper()
	msg := "pgtest: no PostgreSQL: " + why +
		"; set LEAKLESS_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) or install PostgreSQL's initdb and pg_ctl"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// InCI reports whether the CI environment variable asks for missing
// services to fail tests instead of skipping them.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return u.String()
}
