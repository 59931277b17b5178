package store

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/leakless/leakless/internal/migrate"
)

// ErrSchemaVersion is wrapped by the error [Postgres.CheckSchema] returns
// when the database's schema is not the version this code expects: behind
// it (Migrate has not run since an upgrade) or ahead of it (a newer
// release migrated it).
var ErrSchemaVersion = errors.New("store: schema version mismatch")

// Migration is one version of the store's schema: the SQL that brings a
// database from the version before it to this one, expanded for the
// configured [Table] and [WithSchema]. Its SQL ends by recording the
// version in leakless_migrations, so a host that applies it with its own
// tool (goose, golang-migrate) passes [Postgres.CheckSchema] as one that
// ran [Postgres.Migrate] does. Version 1 also creates that table (and the
// schema of [WithSchema]).
type Migration struct {
	Version int    // 1, 2, 3, ...
	Name    string // what the version is for, e.g. "initial"
	SQL     string // one script of statements ending in ";"
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationSet is the store's migrations for n, recorded under the
// component "store:" + key.
func migrationSet(n names, key string) *migrate.Set {
	r := n.replacer()
	versions, err := migrate.Load(migrationFiles, "migrations", r.Replace)
	if err != nil {
		panic(err) // the embedded files are the package's own; a test loads them
	}
	s := &migrate.Set{Component: "store:" + key, Table: n.migrations, Versions: versions}
	if n.schema != "" {
		s.Prelude = []string{r.Replace(createSchemaSQL)}
	}
	return s
}

// Migrations returns the store's schema versions, oldest first, with
// their SQL expanded for the configured Table and schema: what
// [Postgres.Migrate] applies, for a host that applies migrations with its
// own tool. Each version's SQL is idempotent, and version 1 also takes a
// database created by a release from before versions, as it is.
func (p *Postgres) Migrations() []Migration {
	out := make([]Migration, len(p.mig.Versions))
	for i, v := range p.mig.Versions {
		out[i] = Migration{Version: v.Version, Name: v.Name, SQL: p.mig.Script(v)}
	}
	return out
}

// Migrate applies every schema version the database does not have yet
// (see [Postgres.Migrations]), each recorded in leakless_migrations, in
// one transaction under an advisory lock, so it is idempotent and safe to
// run from every replica at start-up. A database created by a release
// from before versions takes version 1 as it is: every statement of it is
// IF NOT EXISTS, and it also brings what such a release created up to date
// (the columns since added to leakless_attempts, the pending index
// leakless_pending_<table> replaced by leakless_unreaped_<table>, which
// leaves out rows whose instance column is the empty string). A database
// already at a newer version than this code knows is left alone;
// [Postgres.CheckSchema] reports it.
//
// On a large, busy host table, creating the indexes blocks writes to it
// while they build; a host that cannot afford that applies
// [Postgres.Migrations] with its own migration tool instead, building the
// indexes CONCURRENTLY (and dropping the old one after the new one is
// valid).
func (p *Postgres) Migrate(ctx context.Context) error {
	err := p.mig.Migrate(ctx, p.db)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// SchemaSQL returns every version's SQL (see [Postgres.Migrations]) as one
// script, for a host that applies schema changes with its own tooling.
func (p *Postgres) SchemaSQL() string { return p.mig.All() }

// SchemaVersion returns the newest schema version the database records
// for this store's Table: 0 before the first Migrate (or after only an
// unversioned Migrate of an earlier release).
func (p *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	v, err := p.mig.Current(ctx, p.db)
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// CheckSchema returns nil when the database is at the schema version this
// code expects, and otherwise an error wrapping [ErrSchemaVersion] that
// says which versions differ: a host that migrates with its own tool
// calls it at start-up, so a missed migration fails the deploy instead of
// the first sweep. Any other error is the database's.
func (p *Postgres) CheckSchema(ctx context.Context) error {
	if err := p.mig.Verify(ctx, p.db, ErrSchemaVersion); err != nil {
		if errors.Is(err, ErrSchemaVersion) {
			return err
		}
		return fmt.Errorf("store: schema version: %w", err)
	}
	return nil
}
