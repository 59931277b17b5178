package events

import (
	"fmt"
	"time"

	"github.com/leakless/leakless/internal/sqlident"
)

// Defaults for the Postgres sink's options.
const (
	// DefaultTable is the table the sink writes when WithTable is not given.
	DefaultTable = "structure_events"
	// DefaultSubjectColumn holds Event.Subject when WithSubjectColumn is not given.
	DefaultSubjectColumn = "subject_id"
	// DefaultWriteTimeout bounds every write made by Emit, and each chunk
	// written by EmitBatch.
	DefaultWriteTimeout = 5 * time.Second
)

// Option configures the Postgres sink built by [NewPgx] or [NewSQL].
type Option func(*config)

type config struct {
	table        string
	subject      string
	writeTimeout time.Duration
}

func newConfig(opts []Option) (config, error) {
	c := config{
		table:        DefaultTable,
		subject:      DefaultSubjectColumn,
		writeTimeout: DefaultWriteTimeout,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if err := sqlident.Validate(c.table); err != nil {
		return c, fmt.Errorf("%w: table: %w", ErrConfig, err)
	}
	if err := sqlident.ValidateIdent(c.subject); err != nil {
		return c, fmt.Errorf("%w: subject column: %w", ErrConfig, err)
	}
	if c.writeTimeout <= 0 {
		return c, fmt.Errorf("%w: write timeout must be positive, got %v", ErrConfig, c.writeTimeout)
	}
	return c, nil
}

// WithTable points the sink at another table, optionally schema-qualified
// ("audit.events"); the default is [DefaultTable]. The name must be a plain identifier (ASCII letters,
// digits and underscores, not starting with a digit, at most 63 bytes); it is
// quoted, so it is case-sensitive. The table needs the columns id,
// event_type, the subject column, payload (jsonb) and created_at
// (timestamptz); [Postgres.SchemaSQL] shows the layout the sink creates.
func WithTable(name string) Option {
	return func(c *config) { c.table = name }
}

// WithSubjectColumn names the column that holds Event.Subject, for a host
// table that already has one, such as "workspace_id". The default is
// [DefaultSubjectColumn]. The column may be text (or varchar), uuid, an
// integer type or a domain over one. A subject the column's type cannot
// hold (a uuid column given "i-0abc") never costs the event: it is stored
// with a NULL subject and the text in its payload under [SubjectTextKey].
// The sink reads the column's type from the catalog once, on its first
// write, so the check costs no round trip per event. An empty Subject is
// stored as NULL, and List returns NULL as "".
func WithSubjectColumn(name string) Option {
	return func(c *config) { c.subject = name }
}

// WithWriteTimeout bounds each write made by Emit, and each chunk of
// EmitBatch, which do not end when the caller's context does; within it, a
// write that did not reach the database is tried again. The default is
// [DefaultWriteTimeout]; d must be positive.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) { c.writeTimeout = d }
}
