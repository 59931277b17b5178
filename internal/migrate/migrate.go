package migrate

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/leakless/leakless/internal/pgdriver"
)

// LockSQL serialises every Migrate of the library, store and events alike:
// they share the version table, and two transactions racing on CREATE
// TABLE IF NOT EXISTS can fail on a unique violation in the catalog. The
// lock is transaction-scoped (released at commit), so it is safe behind a
// transaction pooler. Its key is the store's first Migrate lock, so a
// replica of an older release serialises with this one.
const LockSQL = `SELECT pg_advisory_xact_lock(7314942630185127303)`

// Version is one migration, its statements expanded for one component.
type Version struct {
	Version int
	Name    string
	Stmts   []string
}

// Set is a component's migrations and where its versions are recorded.
type Set struct {
	Component string   // the key in the version table, e.g. "store:workspaces"
	Table     string   // the version table, quoted and possibly schema-qualified
	Prelude   []string // statements the version table needs first (CREATE SCHEMA), run by every Migrate
	Versions  []Version
}

// Load reads the migration files in dir of fsys, named NNN_name.sql, in
// version order; expand turns each file's template into its statements'
// text. Statements in a file end with a semicolon at the end of a line.
// Versions must run 1, 2, 3, ... with no gap.
func Load(fsys fs.FS, dir string, expand func(string) string) ([]Version, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Version
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migrate: %s: want NNN_name.sql", e.Name())
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migrate: %s: %w", e.Name(), err)
		}
		b, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, Version{Version: v, Name: name, Stmts: Split(expand(string(b)))})
	}
	slices.SortFunc(out, func(a, b Version) int { return a.Version - b.Version })
	for i, v := range out {
		if v.Version != i+1 {
			return nil, fmt.Errorf("migrate: version %d follows %d", v.Version, i)
		}
	}
	return out, nil
}

// Split cuts a script into its statements: each ends with a semicolon at
// the end of a line. Lines that are only a comment, and blank lines, are
// dropped, so a file can say why above each statement.
func Split(script string) []string {
	var out []string
	var cur []string
	for line := range strings.Lines(script) {
		line = strings.TrimRight(line, "\r\n")
		trimmed := strings.TrimSpace(line)
		if len(cur) == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "--")) {
			continue
		}
		if s, ok := strings.CutSuffix(line, ";"); ok {
			cur = append(cur, s)
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, "\n"))
	}
	return out
}

// Latest is the newest version of s.
func (s *Set) Latest() int { return len(s.Versions) }

// createTable is the version table's DDL.
func (s *Set) createTable() string {
	return `CREATE TABLE IF NOT EXISTS ` + s.Table + ` (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)`
}

const recordSQL = ` (component, version, name) VALUES ($1, $2, $3) ON CONFLICT (component, version) DO NOTHING`

// Script is version v's statements as one script for a host's own tool,
// ending with the record of the version; version 1 begins with the
// prelude and the version table.
func (s *Set) Script(v Version) string {
	var stmts []string
	if v.Version == 1 {
		stmts = append(slices.Clone(s.Prelude), s.createTable())
	}
	stmts = append(stmts, v.Stmts...)
	stmts = append(stmts, `INSERT INTO `+s.Table+` (component, version, name) VALUES (`+
		literal(s.Component)+`, `+strconv.Itoa(v.Version)+`, `+literal(v.Name)+`) ON CONFLICT (component, version) DO NOTHING`)
	return strings.Join(stmts, ";\n\n") + ";\n"
}

// Apply runs every version newer than the one c's database records, each
// followed by its record, and returns the versions it applied. The caller
// holds LockSQL in the same transaction. A database newer than the code
// is left alone: Check reports it.
func (s *Set) Apply(ctx context.Context, c pgdriver.Executor) ([]int, error) {
	for _, q := range append(slices.Clone(s.Prelude), s.createTable()) {
		if err := c.Exec(ctx, q); err != nil {
			return nil, err
		}
	}
	cur, err := pgdriver.Int(ctx, c, `SELECT COALESCE(max(version), 0) FROM `+s.Table+` WHERE component = $1`, s.Component)
	if err != nil {
		return nil, fmt.Errorf("read version: %w", err)
	}
	var applied []int
	for _, v := range s.Versions {
		if v.Version <= cur {
			continue
		}
		for _, q := range v.Stmts {
			if err := c.Exec(ctx, q); err != nil {
				return applied, fmt.Errorf("version %d (%s): %w", v.Version, v.Name, err)
			}
		}
		if err := c.Exec(ctx, `INSERT INTO `+s.Table+recordSQL, s.Component, v.Version, v.Name); err != nil {
			return applied, fmt.Errorf("version %d (%s): record: %w", v.Version, v.Name, err)
		}
		applied = append(applied, v.Version)
	}
	return applied, nil
}

// Migrate applies every missing version in one transaction on db, under
// LockSQL: what every component's Migrate does.
func (s *Set) Migrate(ctx context.Context, db pgdriver.Executor) error {
	return db.InTx(ctx, func(tx pgdriver.Executor) error {
		if err := tx.Exec(ctx, LockSQL); err != nil {
			return err
		}
		_, err := s.Apply(ctx, tx)
		return err
	})
}

// Current is the newest version c's database records for s's component:
// 0 when it records none, or has no version table at all (nothing
// migrated yet, or a schema made by a release before versions).
func (s *Set) Current(ctx context.Context, c pgdriver.Executor) (int, error) {
	ok, err := pgdriver.Int(ctx, c, `SELECT (to_regclass($1) IS NOT NULL)::int`, s.Table)
	if err != nil || ok == 0 {
		return 0, err
	}
	return pgdriver.Int(ctx, c, `SELECT COALESCE(max(version), 0) FROM `+s.Table+` WHERE component = $1`, s.Component)
}

// Check describes a mismatch between the database's version cur and the
// code's, or returns "" when they agree.
func (s *Set) Check(cur int) string {
	switch latest := s.Latest(); {
	case cur < latest:
		return fmt.Sprintf("%s: database is at version %d, the code expects %d: run Migrate (or apply versions %d to %d)", s.Component, cur, latest, cur+1, latest)
	case cur > latest:
		return fmt.Sprintf("%s: database is at version %d, newer than the %d this code knows: a newer release migrated it", s.Component, cur, latest)
	}
	return ""
}

// literal quotes s as a SQL string literal. Components are built from
// validated identifiers, so there is never a backslash to escape.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// All is every version's SQL as one script, each under a comment that
// names the component and the version.
func (s *Set) All() string {
	var b strings.Builder
	for i, v := range s.Versions {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "-- %s version %d: %s\n\n", s.Component, v.Version, v.Name)
		b.WriteString(s.Script(v))
	}
	return b.String()
}

// Verify returns nil when c's database is at s's latest version, an error
// wrapping mismatch that says how it differs when it is not, or the
// database's error.
func (s *Set) Verify(ctx context.Context, c pgdriver.Executor, mismatch error) error {
	v, err := s.Current(ctx, c)
	if err != nil {
		return err
	}
	if msg := s.Check(v); msg != "" {
		return fmt.Errorf("%w: %s", mismatch, msg)
	}
	return nil
}
