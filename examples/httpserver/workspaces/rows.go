package workspaces

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Errors returned by [Rows].
var (
	// ErrNotFound: no row has that id (for Insert: the parent).
	ErrNotFound = errors.New("workspaces: not found")
	// ErrParentRemoved: Insert under a parent that is deleted.
	ErrParentRemoved = errors.New("workspaces: parent is removed")
	// ErrNotProvisioning: Record on a row that is no longer provisioning,
	// because it was deleted while its instance launched.
	ErrNotProvisioning = errors.New("workspaces: row is not provisioning")
)

// Rows is the API's own access to its table: the writes a host makes
// anyway. The library's store reads the same table and writes it only in
// RemoveTree and Reaped.
type Rows interface {
	// Insert writes a provisioning row. parentID may be empty; otherwise it
	// must name a live row (ErrNotFound, ErrParentRemoved).
	Insert(ctx context.Context, id, parentID string) (Workspace, error)
	// Record stores the launched instance on a provisioning row and marks
	// it running. ErrNotProvisioning if the row was deleted meanwhile.
	Record(ctx context.Context, id, instanceID string) (Workspace, error)
	// Abandon marks a provisioning row that holds no instance removed,
	// after a failed launch. It reports whether it changed the row.
	Abandon(ctx context.Context, id string) (bool, error)
	// Get reads one row (ErrNotFound).
	Get(ctx context.Context, id string) (Workspace, error)
}

// Schema is the workspaces table: the host's own, which leakless reads.
// store's Migrate adds its partial index and its own tables beside it.
// region says where a row's instance lives, for a worker that sweeps one
// shard per region; NULL is the default location, where this API
// launches.
const Schema = `CREATE TABLE IF NOT EXISTS workspaces (
	id          text PRIMARY KEY,
	parent_id   text REFERENCES workspaces (id),
	status      text NOT NULL,
	instance_id text,
	created_at  timestamptz NOT NULL DEFAULT now(),
	region      text
);
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS region text;
CREATE INDEX IF NOT EXISTS workspaces_parent_id ON workspaces (parent_id);
`

// The statements behind [Postgres]. The parent is locked FOR SHARE so an
// insert cannot slip under a parent whose DELETE is committing.
const (
	sqlInsert = `INSERT INTO workspaces (id, parent_id, status)
SELECT $1, $2, 'provisioning'
WHERE $2::text IS NULL OR EXISTS (
	SELECT 1 FROM workspaces WHERE id = $2 AND status <> 'removed' FOR SHARE)
RETURNING id, coalesce(parent_id, ''), status, coalesce(instance_id, ''), created_at`
	sqlParentStatus = `SELECT status FROM workspaces WHERE id = $1`
	sqlRecord       = `UPDATE workspaces SET instance_id = $2, status = 'running'
WHERE id = $1 AND status = 'provisioning'
RETURNING id, coalesce(parent_id, ''), status, coalesce(instance_id, ''), created_at`
	sqlAbandon = `UPDATE workspaces SET status = 'removed'
WHERE id = $1 AND status = 'provisioning' AND coalesce(instance_id, '') = ''`
	sqlGet = `SELECT id, coalesce(parent_id, ''), status, coalesce(instance_id, ''), created_at
FROM workspaces WHERE id = $1`
)

// PgxDB is what [Postgres] needs of a connection: *pgxpool.Pool and
// *pgx.Conn both satisfy it.
type PgxDB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Postgres is [Rows] over the workspaces table in PostgreSQL.
type Postgres struct{ db PgxDB }

// NewPostgres returns Rows over db. The table is found through the
// connection's search_path; create it with Migrate or [Schema].
func NewPostgres(db PgxDB) *Postgres { return &Postgres{db: db} }

// Migrate creates the workspaces table if it does not exist.
func (p *Postgres) Migrate(ctx context.Context) error {
	if _, err := p.db.Exec(ctx, Schema); err != nil {
		return fmt.Errorf("workspaces: migrate: %w", err)
	}
	return nil
}

// Insert implements [Rows].
func (p *Postgres) Insert(ctx context.Context, id, parentID string) (Workspace, error) {
	var parent *string
	if parentID != "" {
		parent = &parentID
	}
	ws, err := scan(p.db.QueryRow(ctx, sqlInsert, id, parent))
	if !errors.Is(err, pgx.ErrNoRows) {
		return ws, wrap("insert", err)
	}
	// Nothing inserted: the parent is missing or removed.
	var status string
	err = p.db.QueryRow(ctx, sqlParentStatus, parentID).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Workspace{}, ErrNotFound
	case err != nil:
		return Workspace{}, wrap("insert", err)
	default:
		return Workspace{}, ErrParentRemoved
	}
}

// Record implements [Rows].
func (p *Postgres) Record(ctx context.Context, id, instanceID string) (Workspace, error) {
	ws, err := scan(p.db.QueryRow(ctx, sqlRecord, id, instanceID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Workspace{}, ErrNotProvisioning
	}
	return ws, wrap("record", err)
}

// Abandon implements [Rows].
func (p *Postgres) Abandon(ctx context.Context, id string) (bool, error) {
	tag, err := p.db.Exec(ctx, sqlAbandon, id)
	if err != nil {
		return false, wrap("abandon", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Get implements [Rows].
func (p *Postgres) Get(ctx context.Context, id string) (Workspace, error) {
	ws, err := scan(p.db.QueryRow(ctx, sqlGet, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Workspace{}, ErrNotFound
	}
	return ws, wrap("get", err)
}

func scan(row pgx.Row) (Workspace, error) {
	var ws Workspace
	err := row.Scan(&ws.ID, &ws.ParentID, &ws.Status, &ws.InstanceID, &ws.CreatedAt)
	return ws, err
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("workspaces: %s: %w", op, err)
}
