package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/internal/migrate"
	"github.com/leakless/leakless/internal/pgdriver"
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
	db        pgdriver.Executor
	key       string // the host table's configured name: its rows' key in leakless_attempts
	sql       statements
	chunk     int
	grace     time.Duration
	hasParent bool // the Table names a parent column

	// For Reaped's catalog lookup: the host table as its statements name
	// it, and the instance column's name.
	tableRef, instanceColumn string

	rescan time.Duration // the least time between two whole walks of the pending index
	scan   *walkState
	names  names // as quoted, for In
	mig    *migrate.Set
}

// walkState is where Pending's walk of the pending index stands. It is
// this store value's own: another replica walks on its own, which costs
// reads, never correctness.
type walkState struct {
	mu      sync.Mutex
	cursor  string    // the last id read, in its text form
	started bool      // cursor is set: the walk is under way
	done    time.Time // when a walk last read the whole index
	purged  time.Time // when stale records were last deleted
}

var _ Store = (*Postgres)(nil)

// PgxDB is what NewPgx needs from pgx. *pgxpool.Pool, *pgx.Conn and pgx.Tx
// satisfy it; a *pgx.Conn or pgx.Tx must not be shared between goroutines,
// so a pool is what a long-running host passes.
type PgxDB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

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
	return newPostgres(pgdriver.NewPgx(db), t, opts)
}

// NewSQL returns a Postgres store over t, reached through database/sql
// (pgx's stdlib driver, lib/pq, ...). Bad t or options are an error
// wrapping ErrConfig.
func NewSQL(db *sql.DB, t Table, opts ...Option) (*Postgres, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil database", ErrConfig)
	}
	return newPostgres(pgdriver.NewSQL(db), t, opts)
}

func newPostgres(db pgdriver.Executor, t Table, opts []Option) (*Postgres, error) {
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
		rescan: cfg.rescan, scan: &walkState{}, names: n, mig: migrationSet(n, t.Name),
	}, nil
}

// In returns a view of the store scoped to one location of
// [Table].Location: its Pending returns only rows of that location (""
// is the rows whose location is NULL or ”). Every other method is the
// store's own: Reaped, Failed, RemoveTree and Stopping address rows by id,
// and Known answers for every location, since an instance held by a row
// anywhere is in use. Each view walks the pending index on its own; the
// due-time indexes are shared, so a view reads past other locations' due
// rows, and one location's page costs more the more locations have rows
// due at once. A Table without a Location column, or a location that
// cannot be a SQL literal, is an error wrapping ErrConfig.
func (p *Postgres) In(location string) (*Postgres, error) {
	n, err := p.names.scoped(location)
	if err != nil {
		return nil, err
	}
	v := *p
	v.names, v.sql, v.scan = n, newStatements(n), &walkState{}
	return &v, nil
}

// Pending returns up to limit removed rows still holding an instance that
// are due, by the database's clock. See [Store].
//
// A call costs O(limit), not O(backlog). The due rows that have a record
// (a grace, or a failure) are read off the front of two indexes on
// leakless_attempts, never-attempted ones first. Rows a host removed with
// its own UPDATE have no record until their first attempt; they are found
// by a walk of the pending index in id order that each call continues
// where the last stopped, and come after the never-attempted recorded
// rows and before the attempted ones. A call whose page is still not full
// walks on to the end of the index, at most once per rescan interval (see
// [WithRescanInterval]).
func (p *Postgres) Pending(ctx context.Context, limit int) ([]Pending, error) {
	if limit <= 0 {
		return nil, nil
	}
	var untried, tried []Pending
	err := p.db.Query(ctx, p.sql.due, []any{p.key, limit}, func(r pgdriver.Row) error {
		pe, err := scanPending(r)
		if pe.Attempts == 0 {
			untried = append(untried, pe)
		} else {
			tried = append(tried, pe)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: pending: %w", err)
	}
	if len(untried) < limit {
		found, err := p.walk(ctx, limit-len(untried), len(untried)+len(tried) < limit)
		if err != nil {
			return nil, fmt.Errorf("store: pending: %w", err)
		}
		untried = append(untried, found...)
	}
	out := append(untried, tried...)
	return out[:min(limit, len(out))], nil
}

// walk returns up to want rows of the pending index that have no record,
// reading on from where the last walk stopped, at most a stretch of
// walkStretch(want) entries; with short set (the page is not full
// otherwise) it reads on to the index's end, from its beginning, if the
// last whole read is older than the rescan interval. The next walk resumes
// after the last row returned, or after the last entry read. A walk that
// reaches the end starts the next from the beginning.
func (p *Postgres) walk(ctx context.Context, want int, short bool) ([]Pending, error) {
	p.scan.mu.Lock()
	defer p.scan.mu.Unlock()
	if short && (p.scan.done.IsZero() || time.Since(p.scan.done) >= p.rescan) {
		p.scan.cursor, p.scan.started = "", false
	} else {
		short = false
	}
	fromStart := !p.scan.started
	stretch := walkStretch(want)
	if short {
		stretch = max(stretch, wholeStretch) // a whole read in few round trips
	}
	var found []Pending
	for {
		query, args := p.sql.walkFirst, []any{p.key, want - len(found), stretch}
		if p.scan.started {
			query, args = p.sql.walkAfter, append(args, p.scan.cursor)
		}
		n := len(found)
		err := p.db.Query(ctx, query, args, func(r pgdriver.Row) error {
			var pe Pending
			err := r.Scan(&pe.ResourceID, &pe.InstanceID)
			found = append(found, pe)
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(found) == want && len(found) > n {
			p.scan.cursor, p.scan.started = found[len(found)-1].ResourceID, true
			return found, nil
		}
		end, more, err := p.walkEnd(ctx, stretch)
		if err != nil {
			return nil, err
		}
		if !more {
			// The end of the index: the next walk starts over.
			p.scan.cursor, p.scan.started = "", false
			if fromStart {
				p.walked(ctx)
			}
			return found, nil
		}
		p.scan.cursor, p.scan.started = end, true
		if !short {
			return found, nil
		}
	}
}

// walkEnd returns the id of the entry stretch entries after the walk's
// cursor, and false when the index ends before it.
func (p *Postgres) walkEnd(ctx context.Context, stretch int) (string, bool, error) {
	query, args := p.sql.walkEndFirst, []any{stretch}
	if p.scan.started {
		query, args = p.sql.walkEndAfter, append(args, p.scan.cursor)
	}
	var id string
	switch err := p.db.QueryRow(ctx, query, args...).Scan(&id); {
	case isNoRows(err):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return id, true, nil
}

// walkStretch is how many entries of the pending index one walk reads for
// want rows: enough that rows already recorded (attempted, or in their
// grace) between them do not hide the ones that are not, few enough that
// a call stays O(page).
func walkStretch(want int) int { return max(2*want, 100) }

// wholeStretch is the least stretch of a walk that reads the whole index.
const wholeStretch = 5000

// walked notes a walk of the whole pending index, and at most once per
// rescan interval deletes the due records that no longer describe a
// pending row. The purge is housekeeping: its failure (a read-only
// connection, say) costs only longer reads of the due indexes, so it is
// not reported.
func (p *Postgres) walked(ctx context.Context) {
	now := time.Now()
	p.scan.done = now
	if !p.scan.purged.IsZero() && now.Sub(p.scan.purged) < p.rescan {
		return
	}
	p.scan.purged = now
	_ = p.db.Exec(ctx, p.sql.purge, p.key)
}

// Reaped clears the row's instance id if it still holds p.InstanceID and
// is still removed. See [Store]. The column is set to NULL, or to the
// empty string when it is declared NOT NULL.
func (p *Postgres) Reaped(ctx context.Context, pe Pending) (bool, error) {
	cleared, err := p.reapedAll(ctx, []Pending{pe})
	if err != nil {
		return false, fmt.Errorf("store: reaped %q: %w", pe.ResourceID, err)
	}
	return cleared[0], nil
}

// ReapedAll is Reaped for a page of rows, in one statement: cleared[i] is
// Reaped's answer for ps[i]. See [BatchStore].
func (p *Postgres) ReapedAll(ctx context.Context, ps []Pending) (cleared []bool, err error) {
	if cleared, err = p.reapedAll(ctx, ps); err != nil {
		return nil, fmt.Errorf("store: reaped %d rows: %w", len(ps), err)
	}
	return cleared, nil
}

func (p *Postgres) reapedAll(ctx context.Context, ps []Pending) ([]bool, error) {
	cleared := make([]bool, len(ps))
	if len(ps) == 0 {
		return cleared, nil
	}
	ids, insts := make([]string, 0, len(ps)), make([]string, 0, len(ps))
	for _, pe := range ps {
		if storable(pe.ResourceID) && storable(pe.InstanceID) && pe.InstanceID != "" {
			ids, insts = append(ids, pe.ResourceID), append(insts, pe.InstanceID)
		}
	}
	done := map[string]bool{}
	err := p.db.Query(ctx, p.sql.reaped, []any{textArray(ids), textArray(insts), p.key, p.tableRef, p.instanceColumn}, func(r pgdriver.Row) error {
		var id string
		err := r.Scan(&id)
		done[id] = true
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, pe := range ps {
		// One clear per row: a duplicate of a cleared row did not clear it.
		if done[pe.ResourceID] {
			cleared[i], done[pe.ResourceID] = true, false
		}
	}
	return cleared, nil
}

// Failed records a failed attempt and hides the row for delay, by the
// database's clock. See [Store].
func (p *Postgres) Failed(ctx context.Context, pe Pending, cause error, delay time.Duration) error {
	if err := p.failedAll(ctx, []Failure{{Pending: pe, Err: cause, Delay: delay}}); err != nil {
		return fmt.Errorf("store: failed %q: %w", pe.ResourceID, err)
	}
	return nil
}

// FailedAll is Failed for a page of rows, in one statement. See
// [BatchStore].
func (p *Postgres) FailedAll(ctx context.Context, fs []Failure) error {
	if err := p.failedAll(ctx, fs); err != nil {
		return fmt.Errorf("store: failed %d rows: %w", len(fs), err)
	}
	return nil
}

func (p *Postgres) failedAll(ctx context.Context, fs []Failure) error {
	fs = distinctFailures(fs)
	if len(fs) == 0 {
		return nil
	}
	var ids, insts, errs []string
	var delays []int64
	var notFound, permanent []bool
	for _, f := range fs {
		if !storable(f.Pending.ResourceID) || !storable(f.Pending.InstanceID) {
			continue
		}
		ids, insts = append(ids, f.Pending.ResourceID), append(insts, f.Pending.InstanceID)
		errs = append(errs, lastError(f.Err))
		delays = append(delays, max(f.Delay, 0).Microseconds())
		notFound = append(notFound, errors.Is(f.Err, teardown.ErrNotFound))
		permanent = append(permanent, isPermanent(f.Err))
	}
	return p.db.Exec(ctx, p.sql.failed, p.key, textArray(ids), textArray(insts), textArray(errs), int64Array(delays), boolArray(notFound), boolArray(permanent))
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
func (p *Postgres) removeTree(ctx context.Context, rootID string) (map[string]Pending, error) {
	tree := map[string]Pending{}
	if !p.hasParent {
		if _, err := p.markTree(ctx, p.db, rootID, tree); err != nil {
			return nil, err
		}
		return tree, nil
	}
	err := p.db.InTx(ctx, func(tx pgdriver.Executor) error {
		for {
			grew, err := p.markTree(ctx, tx, rootID, tree)
			if err != nil || !grew {
				return err
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return tree, nil
}

// markTree runs the tree statement once, adding every row it returns to
// tree, and reports whether any was new. No row at all is ErrNotFound.
func (p *Postgres) markTree(ctx context.Context, q pgdriver.Executor, rootID string, tree map[string]Pending) (bool, error) {
	n, grew := 0, false
	err := q.Query(ctx, p.sql.removeTree, []any{rootID, p.key, p.grace.Microseconds()}, func(r pgdriver.Row) error {
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
		if err := p.db.Exec(ctx, p.sql.stopping, p.key, pe.ResourceID, pe.InstanceID, p.grace.Microseconds()); err != nil {
			return fmt.Errorf("store: stopping %q: %w", pe.ResourceID, err)
		}
	}
	return nil
}

// Known reports which instance ids some row holds, which resource ids are
// still provisioning, which are removed (and of those, which still hold an
// instance whose stop has not failed for good), and the database's clock
// at the read. See [Store]. Large inputs are sent in chunks; Now is the first
// chunk's, the earliest, so ages measured against it are never overstated.
// Holding is looked up on the instance id column, which the host normally
// indexes already (unique); without an index, Known reads the whole table.
// Removed rows are found by their id's lower-cased text through the
// partial index Migrate creates for it.
func (p *Postgres) Known(ctx context.Context, resourceIDs, instanceIDs []string) (Known, error) {
	k := Known{Held: map[string]bool{}, Provisioning: map[string]bool{}, Removed: map[string]bool{}, Stopping: map[string]bool{}}
	// Provisioning (and removal) is read before holding. A row that starts
	// holding its instance between the two reads is then seen by the
	// second; in the other order it could be seen by neither, and its
	// instance would look orphaned.
	err := p.collect(ctx, p.sql.resources, resourceIDs, true, func(r pgdriver.Row) error {
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
		case "stopping":
			k.Stopping[id.String] = true
		case "now":
			if k.Now.IsZero() {
				k.Now = now.Time
			}
		}
		return nil
	}, p.key)
	if err != nil {
		return Known{}, fmt.Errorf("store: known: resources: %w", err)
	}
	err = p.collect(ctx, p.sql.held, instanceIDs, false, func(r pgdriver.Row) error {
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
func (p *Postgres) collect(ctx context.Context, query string, ids []string, always bool, scan func(pgdriver.Row) error, args ...any) error {
	ids = slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == "" || !storable(s) })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	chunks := slices.Collect(slices.Chunk(ids, p.chunk))
	if len(chunks) == 0 && always {
		chunks = [][]string{nil}
	}
	for _, chunk := range chunks {
		if err := p.db.Query(ctx, query, append([]any{textArray(chunk)}, args...), scan); err != nil {
			return err
		}
	}
	return nil
}

// scanPending scans a row of Pending's columns: id, instance (NULL reads
// as none), attempts, last error and NotFoundFor in microseconds.
func scanPending(r pgdriver.Row) (Pending, error) {
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
