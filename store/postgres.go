package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/teardown"
)

// maxLastError bounds the stored last error: a stop error can carry a
// whole HTTP body, and one noisy row must not bloat the attempts table.
const maxLastError = 1024

// Postgres is the Store over the host's table in PostgreSQL, through pgx
// ([NewPgx]) or database/sql ([NewSQL]). It is safe for concurrent use
// when its database handle is.
//
// It writes the host's table only in Reaped (the guarded clear) and
// RemoveTree; attempt state and leases live in the library's own tables,
// which [Postgres.Migrate] creates; a row's attempt state is keyed by
// [Table].Name as configured and the row's id. Every call is one statement
// or one transaction and keeps no session state, so it works behind a
// transaction pooler such as PgBouncer.
type Postgres struct {
	db        executor
	key       string // the host table's configured name: its rows' key in leakless_attempts
	sql       statements
	chunk     int
	grace     time.Duration
	hasParent bool // the Table names a parent column

	// For Reaped's catalog lookup: the host table as its statements name
	// it, and the instance column's name.
	tableRef, instanceColumn string
}

var _ Store = (*Postgres)(nil)

// NewPgx returns a Postgres store over t, reached through pgx. Bad t or
// options are an error wrapping ErrConfig.
func NewPgx(db PgxDB, t Table, opts ...Option) (*Postgres, error) {
	switch d := db.(type) {
	case nil:
		return nil, fmt.Errorf("%w: nil database", ErrConfig)
	case *pgxpool.Pool:
		if d == nil {
			return nil, fmt.Errorf("%w: nil database", ErrConfig)
		}
	case *pgx.Conn:
		if d == nil {
			return nil, fmt.Errorf("%w: nil database", ErrConfig)
		}
	}
	return newPostgres(pgxExecutor{db}, t, opts)
}

// NewSQL returns a Postgres store over t, reached through database/sql
// (pgx's stdlib driver, lib/pq, ...). Bad t or options are an error
// wrapping ErrConfig.
func NewSQL(db *sql.DB, t Table, opts ...Option) (*Postgres, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil database", ErrConfig)
	}
	return newPostgres(sqlExecutor{db}, t, opts)
}

func newPostgres(db executor, t Table, opts []Option) (*Postgres, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	n, err := t.quote(cfg.schema)
	if err != nil {
		return nil, err
	}
	return &Postgres{
		db: db, key: t.Name, sql: newStatements(n), chunk: cfg.chunk, grace: cfg.grace, hasParent: t.Parent != "",
		tableRef: n.table, instanceColumn: t.InstanceID,
	}, nil
}

// Migrate creates the library's tables and the partial indexes on the
// host's table if they do not exist, in one transaction. It also brings
// what an earlier release created up to date: it adds the columns since
// added to leakless_attempts, and replaces the first pending index
// (leakless_pending_<table>) with leakless_unreaped_<table>, which leaves
// out rows whose instance column is the empty string. It is idempotent and
// safe to run from every replica at start-up. On a large, busy host table,
// creating the indexes blocks writes to it while they build; a host that
// cannot afford that applies [Postgres.SchemaSQL] with its own migration
// tool instead, building the indexes CONCURRENTLY (and dropping the old
// one after the new one is valid).
func (p *Postgres) Migrate(ctx context.Context) (err error) {
	tx, err := p.db.begin(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.rollback(ctx)
		}
	}()
	for _, q := range append([]string{migrateLockSQL}, p.sql.schema...) {
		if err := tx.exec(ctx, q); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
	}
	if err := tx.commit(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// SchemaSQL returns the statements Migrate runs, for a host that applies
// schema changes with its own tooling.
func (p *Postgres) SchemaSQL() string {
	return strings.Join(p.sql.schema, ";\n\n") + ";\n"
}

// Pending returns up to limit removed rows still holding an instance that
// are due, by the database's clock. See [Store].
func (p *Postgres) Pending(ctx context.Context, limit int) ([]Pending, error) {
	if limit <= 0 {
		return nil, nil
	}
	r, err := p.db.query(ctx, p.sql.pending, p.key, limit)
	if err != nil {
		return nil, fmt.Errorf("store: pending: %w", err)
	}
	var out []Pending
	err = scanAll(r, func(r rows) error {
		pe, err := scanPending(r)
		if err != nil {
			return err
		}
		out = append(out, pe)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: pending: %w", err)
	}
	return out, nil
}

// Reaped clears the row's instance id if it still holds p.InstanceID and
// is still removed. See [Store]. The column is set to NULL, or to the
// empty string when it is declared NOT NULL.
func (p *Postgres) Reaped(ctx context.Context, pe Pending) (bool, error) {
	var n int
	if err := p.db.queryRow(ctx, p.sql.reaped, pe.ResourceID, pe.InstanceID, p.key, p.tableRef, p.instanceColumn).Scan(&n); err != nil {
		return false, fmt.Errorf("store: reaped %q: %w", pe.ResourceID, err)
	}
	return n > 0, nil
}

// Failed records a failed attempt and hides the row for delay, by the
// database's clock. See [Store].
func (p *Postgres) Failed(ctx context.Context, pe Pending, cause error, delay time.Duration) error {
	notFound := errors.Is(cause, teardown.ErrNotFound)
	if err := p.db.exec(ctx, p.sql.failed, p.key, pe.ResourceID, pe.InstanceID, lastError(cause), max(delay, 0).Microseconds(), notFound); err != nil {
		return fmt.Errorf("store: failed %q: %w", pe.ResourceID, err)
	}
	return nil
}

// RemoveTree marks rootID and its descendants removed, in one
// transaction, and returns every holder in the tree. See [Store]. Finding
// descendants reads the parent column once per level: an index on it
// keeps a large table's cascade fast.
//
// A host that creates a child under a parent it holds FOR SHARE (or under
// a foreign key, which takes FOR KEY SHARE) makes the tree's statement
// wait, and commits a child that statement's snapshot cannot see. So with
// a parent column RemoveTree walks the tree again, in the same
// transaction, until a walk finds no row the last one did not: each walk
// sees every child committed before it, and the rows it locked make any
// later insert under them wait for the commit and then find its parent
// removed. The common case costs two walks; a table without a parent
// column needs one statement and no transaction.
func (p *Postgres) RemoveTree(ctx context.Context, rootID string) ([]Pending, error) {
	tree, err := p.removeTree(ctx, rootID)
	if err != nil {
		return nil, fmt.Errorf("store: remove tree %q: %w", rootID, err)
	}
	var out []Pending
	for _, pe := range tree {
		if pe.InstanceID != "" {
			out = append(out, pe)
		}
	}
	sortPending(out)
	return out, nil
}

// removeTree marks the tree removed and returns every row of it by id,
// holding an instance or not.
func (p *Postgres) removeTree(ctx context.Context, rootID string) (_ map[string]Pending, err error) {
	tree := map[string]Pending{}
	if !p.hasParent {
		if _, err := p.markTree(ctx, p.db, rootID, tree); err != nil {
			return nil, err
		}
		return tree, nil
	}
	tx, err := p.db.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.rollback(ctx)
		}
	}()
	for {
		grew, err := p.markTree(ctx, tx, rootID, tree)
		if err != nil {
			return nil, err
		}
		if !grew {
			break
		}
	}
	if err := tx.commit(ctx); err != nil {
		return nil, err
	}
	return tree, nil
}

// markTree runs the tree statement once, adding every row it returns to
// tree, and reports whether any was new. No row at all is ErrNotFound.
func (p *Postgres) markTree(ctx context.Context, q querier, rootID string, tree map[string]Pending) (bool, error) {
	r, err := q.query(ctx, p.sql.removeTree, rootID, p.key, p.grace.Microseconds())
	if err != nil {
		return false, err
	}
	n, grew := 0, false
	err = scanAll(r, func(r rows) error {
		pe, err := scanPending(r)
		if err != nil {
			return err
		}
		if _, seen := tree[pe.ResourceID]; !seen {
			grew = true
		}
		tree[pe.ResourceID] = pe
		n++
		return nil
	})
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, ErrNotFound
	}
	return grew, nil
}

// Stopping tells the store that the caller is stopping the instances of
// ps itself, rows the host marked removed with its own UPDATE: each is
// hidden from Pending for the redrive grace (see [WithRedriveGrace]), as
// the holders RemoveTree returns are, so the sweeper does not stop them a
// second time meanwhile. A row that is gone or no longer holds
// p.InstanceID records nothing; with no grace Stopping does nothing. Its
// attempt count and last error are kept. Each row is one statement of its
// own; on an error the rows before it are recorded and the rest are not.
func (p *Postgres) Stopping(ctx context.Context, ps ...Pending) error {
	if p.grace <= 0 {
		return nil
	}
	for _, pe := range ps {
		if err := p.db.exec(ctx, p.sql.stopping, p.key, pe.ResourceID, pe.InstanceID, p.grace.Microseconds()); err != nil {
			return fmt.Errorf("store: stopping %q: %w", pe.ResourceID, err)
		}
	}
	return nil
}

// Known reports which instance ids some row holds, which resource ids are
// still provisioning and which are removed, and the database's clock at
// the read. See [Store]. Large inputs are sent in chunks; Now is the first
// chunk's, the earliest, so ages measured against it are never overstated.
// Holding is looked up on the instance id column, which the host normally
// indexes already (unique); without an index, Known reads the whole table.
// Removed rows are found by their id's lower-cased text through the
// partial index Migrate creates for it.
func (p *Postgres) Known(ctx context.Context, resourceIDs, instanceIDs []string) (Known, error) {
	k := Known{Held: map[string]bool{}, Provisioning: map[string]bool{}, Removed: map[string]bool{}}
	// Provisioning (and removal) is read before holding. A row that starts
	// holding its instance between the two reads is then seen by the
	// second; in the other order it could be seen by neither, and its
	// instance would look orphaned.
	err := p.collect(ctx, p.sql.resources, resourceIDs, true, func(r rows) error {
		var kind string
		var id sql.NullString
		var now sql.NullTime
		if err := r.Scan(&kind, &id, &now); err != nil {
			return err
		}
		switch kind {
		case "provisioning":
			k.Provisioning[id.String] = true
		case "removed":
			k.Removed[id.String] = true
		case "now":
			if k.Now.IsZero() {
				k.Now = now.Time
			}
		}
		return nil
	})
	if err != nil {
		return Known{}, fmt.Errorf("store: known: resources: %w", err)
	}
	err = p.collect(ctx, p.sql.held, instanceIDs, false, func(r rows) error {
		var id string
		if err := r.Scan(&id); err != nil {
			return err
		}
		k.Held[id] = true
		return nil
	})
	if err != nil {
		return Known{}, fmt.Errorf("store: known: held: %w", err)
	}
	return k, nil
}

// collect runs query over ids, p.chunk at a time, calling scan for every
// row. With always set it runs once even when there is no id to send.
func (p *Postgres) collect(ctx context.Context, query string, ids []string, always bool, scan func(rows) error) error {
	ids = slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == "" || !storable(s) })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	chunks := slices.Collect(slices.Chunk(ids, p.chunk))
	if len(chunks) == 0 && always {
		chunks = [][]string{nil}
	}
	for _, chunk := range chunks {
		r, err := p.db.query(ctx, query, textArray(chunk))
		if err != nil {
			return err
		}
		if err := scanAll(r, scan); err != nil {
			return err
		}
	}
	return nil
}

// scanPending scans a row of Pending's columns: id, instance (NULL reads
// as none), attempts, last error and NotFoundFor in microseconds.
func scanPending(r rows) (Pending, error) {
	var pe Pending
	var inst sql.NullString
	var notFoundUS int64
	if err := r.Scan(&pe.ResourceID, &inst, &pe.Attempts, &pe.LastError, &notFoundUS); err != nil {
		return Pending{}, err
	}
	pe.InstanceID = inst.String
	pe.NotFoundFor = time.Duration(notFoundUS) * time.Microsecond
	return pe, nil
}

// scanAll calls scan for every row of r and closes it.
func scanAll(r rows, scan func(rows) error) error {
	for r.Next() {
		if err := scan(r); err != nil {
			_ = r.Close()
			return err
		}
	}
	if err := r.Err(); err != nil {
		_ = r.Close()
		return err
	}
	return r.Close()
}

// lastError is err's text, truncated to maxLastError bytes on a rune
// boundary and made storable.
func lastError(err error) string {
	if err == nil {
		return ""
	}
	s := strings.ToValidUTF8(strings.ReplaceAll(err.Error(), "\x00", ""), "\uFFFD")
	if len(s) <= maxLastError {
		return s
	}
	cut := maxLastError
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func sortPending(ps []Pending) {
	slices.SortFunc(ps, func(a, b Pending) int { return strings.Compare(a.ResourceID, b.ResourceID) })
}

// isNoRows reports whether err says a query returned no row, from pgx or
// database/sql.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
