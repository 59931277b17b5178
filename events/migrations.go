package events

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/leakless/leakless/internal/migrate"
	"github.com/leakless/leakless/internal/sqlident"
)

// ErrSchemaVersion is wrapped by the error [Postgres.CheckSchema] returns
// when the sink's table is not at the schema version this code expects:
// behind it (Migrate has not run since an upgrade) or ahead of it (a newer
// release migrated it).
var ErrSchemaVersion = errors.New("events: schema version mismatch")

// Migration is one version of the sink's schema: the SQL that brings a
// database from the version before it to this one, expanded for the
// configured table and subject column. Its SQL ends by recording the
// version in leakless_migrations (in the table's schema), so a host that
// applies it with its own tool passes [Postgres.CheckSchema] as one that
// ran [Postgres.Migrate] does; version 1 also creates that table.
type Migration struct {
	Version int    // 1, 2, 3, ...
	Name    string // what the version is for, e.g. "initial"
	SQL     string // one script of statements ending in ";"
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationSet is the sink's migrations for c, recorded under the
// component "events:" + the table's configured name, in a version table
// beside the sink's own.
func migrationSet(c config) *migrate.Set {
	table, _ := sqlident.Quote(c.table) // validated by newConfig
	subject, _ := sqlident.QuoteIdent(c.subject)
	relation, versions := c.table, `"leakless_migrations"`
	if schema, rel, ok := strings.Cut(c.table, "."); ok {
		relation = rel
		q, _ := sqlident.QuoteIdent(schema)
		versions = q + "." + versions
	}
	r := strings.NewReplacer(
		"{{table}}", table,
		"{{subject}}", subject,
		"{{type_index}}", indexName(relation, "_type_created_at_idx"),
		"{{subject_index}}", indexName(relation, "_subject_created_at_idx"),
		"{{key_index}}", indexName(relation, "_event_key_idx"),
	)
	vs, err := migrate.Load(migrationFiles, "migrations", r.Replace)
	if err != nil {
		panic(err) // the embedded files are the package's own; a test loads them
	}
	return &migrate.Set{Component: "events:" + c.table, Table: versions, Versions: vs}
}

// Migrations returns the sink's schema versions, oldest first, with their
// SQL expanded for the configured table and subject column: what
// [Postgres.Migrate] applies, for a host that applies migrations with its
// own tool. Every statement is idempotent, and version 1 also takes a
// table created by a release from before versions, as it is.
func (p *Postgres) Migrations() []Migration {
	out := make([]Migration, len(p.mig.Versions))
	for i, v := range p.mig.Versions {
		out[i] = Migration{Version: v.Version, Name: v.Name, SQL: p.mig.Script(v)}
	}
	return out
}

// Migrate applies every schema version the database does not have yet
// (see [Postgres.Migrations]), each recorded in leakless_migrations, in
// one transaction under an advisory lock the store's Migrate takes too;
// it is safe to run on every start, from many replicas at once. A table
// created by a release from before versions takes version 1 as it is. A
// database already at a newer version than this code knows is left alone;
// [Postgres.CheckSchema] reports it.
func (p *Postgres) Migrate(ctx context.Context) error {
	err := p.mig.Migrate(ctx, p.x)
	if err != nil {
		return fmt.Errorf("events: migrate: %w", err)
	}
	return nil
}

// SchemaSQL returns every version's SQL (see [Postgres.Migrations]) as one
// script, with the configured table and subject column, for hosts that
// apply migrations with their own tool. Every statement is idempotent.
func (p *Postgres) SchemaSQL() string { return p.mig.All() }

// SchemaVersion returns the newest schema version the database records
// for this sink's table: 0 before the first Migrate (or after only an
// unversioned Migrate of an earlier release).
func (p *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	v, err := p.mig.Current(ctx, p.x)
	if err != nil {
		return 0, fmt.Errorf("events: schema version: %w", err)
	}
	return v, nil
}

// CheckSchema returns nil when the database is at the schema version this
// code expects, and otherwise an error wrapping [ErrSchemaVersion] that
// says which versions differ, for a host to call at start-up. Any other
// error is the database's.
func (p *Postgres) CheckSchema(ctx context.Context) error {
	if err := p.mig.Verify(ctx, p.x, ErrSchemaVersion); err != nil {
		if errors.Is(err, ErrSchemaVersion) {
			return err
		}
		return fmt.Errorf("events: schema version: %w", err)
	}
	return nil
}
