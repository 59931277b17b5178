package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/store"
)

// Database is where the workspaces table and the events live: PostgreSQL,
// or memory.
type Database struct {
	Store  store.Store
	Rows   workspaces.Rows
	Events events.Sink
	Ledger workspaces.Ledger
	// Postgres is the store on PostgreSQL (for its Lease), nil in memory.
	Postgres *store.Postgres
	// Pool is the connection pool, nil in memory.
	Pool *pgxpool.Pool

	drop  string          // schema to drop on Close
	spool *events.Spooler // in front of the Postgres sink; drained on Close
}

// DatabaseOptions says which database to open.
type DatabaseOptions struct {
	// URL is a PostgreSQL URL; empty means memory.
	URL string
	// Schema, when set, is created if missing and used as the search_path,
	// so every table lives in it.
	Schema string
	// DropSchema drops Schema (and everything in it) on Close.
	DropSchema bool
	// Store configures the store, in memory or on PostgreSQL: for example
	// store.WithRedriveGrace.
	Store []store.Option
}

// OpenDatabase opens the database and creates what is missing: the
// workspaces table, the store's tables and index, and the events table.
func OpenDatabase(ctx context.Context, o DatabaseOptions) (*Database, error) {
	if o.URL == "" {
		mem := workspaces.NewMemory(o.Store...)
		sink := workspaces.NewMemoryEvents()
		return &Database{Store: mem, Rows: mem, Events: sink, Ledger: sink}, nil
	}
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("backend: database url: %w", err)
	}
	if o.Schema != "" {
		if err := createSchema(ctx, o.URL, o.Schema); err != nil {
			return nil, err
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = o.Schema
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("backend: connect: %w", err)
	}
	d := &Database{Pool: pool}
	if o.DropSchema {
		d.drop = o.Schema
	}
	if err := d.migrate(ctx, o.Store); err != nil {
		d.Close(ctx)
		return nil, err
	}
	return d, nil
}

func (d *Database) migrate(ctx context.Context, opts []store.Option) error {
	rows := workspaces.NewPostgres(d.Pool)
	if err := rows.Migrate(ctx); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	st, err := store.NewPgx(d.Pool, workspaces.Table, opts...)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	sink, err := events.NewPgx(d.Pool)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	if err := sink.Migrate(ctx); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	// Events a database outage keeps from being written are held in
	// memory and written once it is back, in order; Close drains them.
	d.spool = events.Spool(sink)
	d.Store, d.Postgres, d.Rows, d.Events, d.Ledger = st, st, rows, d.spool, sink
	return nil
}

// closeTimeout bounds how long Close waits for held events to be written.
const closeTimeout = 10 * time.Second

// Close writes the events still held, then closes the pool, first dropping
// the schema if asked to.
func (d *Database) Close(ctx context.Context) error {
	if d.Pool == nil {
		return nil
	}
	defer d.Pool.Close()
	var err error
	if d.spool != nil {
		sctx, cancel := context.WithTimeout(ctx, closeTimeout)
		err = d.spool.Close(sctx)
		cancel()
	}
	if d.drop == "" {
		return err
	}
	// The pool's search_path is the schema itself; dropping it from there
	// is fine, as nothing else uses it.
	if _, derr := d.Pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{d.drop}.Sanitize()+" CASCADE"); derr != nil {
		return errors.Join(err, fmt.Errorf("backend: drop schema: %w", derr))
	}
	return err
}

func createSchema(ctx context.Context, url, schema string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("backend: connect: %w", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("backend: create schema: %w", err)
	}
	return nil
}
