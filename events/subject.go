package events

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/leakless/leakless/internal/pgdriver"
)

// SubjectTextKey is the payload field that keeps an event's Subject when
// the subject column's type cannot hold it (a uuid column given "i-0abc",
// a bigint column given "ws-1"): the event is written with a NULL subject
// and the text here, never dropped, and [Postgres.List] still finds it by
// that Subject.
const SubjectTextKey = "subject_text"

// subjectColumn is what the sink knows of its subject column's type, read
// once from the catalog: enough to tell, before sending, whether a subject
// fits.
type subjectColumn struct {
	typ    string // pg_type.typname (a domain's base type's): text, varchar, bpchar, uuid, int2, int4, int8, ...
	maxLen int    // characters, for varchar(n) and char(n); 0 means no limit
	domain bool   // a domain, whose constraints only the server checks
}

// fits reports whether s can be stored in the column. For a type it does
// not know (a domain, say), it answers true and the server decides.
func (c *subjectColumn) fits(s string) bool {
	if c == nil {
		return true
	}
	switch c.typ {
	case fitsNothing.typ:
		return false
	case "uuid":
		var u pgtype.UUID
		return u.Scan(s) == nil
	case "int2":
		_, err := strconv.ParseInt(strings.TrimSpace(s), 10, 16)
		return err == nil
	case "int4":
		_, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		return err == nil
	case "int8":
		_, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		return err == nil
	case "varchar", "bpchar":
		return c.maxLen == 0 || utf8.RuneCountInString(s) <= c.maxLen
	}
	return true
}

// known reports whether fits has the last word for this column's type.
func (c *subjectColumn) known() bool {
	if c == nil || c.domain {
		return false
	}
	switch c.typ {
	case "uuid", "int2", "int4", "int8", "varchar", "bpchar", "text", "citext", "name":
		return true
	}
	return false
}

// fitsNothing is a column no subject fits: newRecord given it moves the
// subject into the payload.
var fitsNothing = &subjectColumn{typ: "-"}

// columnsSQL reads the subject and id columns' types. to_regclass
// resolves the table as the inserts do, through the connection's
// search_path, and yields no row (not an error) for a table that does not
// exist yet.
const columnsSQL = `SELECT a.attname, coalesce(b.typname, t.typname), t.typtype = 'd', CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'
WHERE a.attrelid = to_regclass($1) AND a.attname IN ($2, 'id', 'event_key') AND a.attnum > 0 AND NOT a.attisdropped`

// columns is what the sink knows of its table, read once from the catalog.
type columns struct {
	subject subjectColumn
	intID   bool // the id column is an integer, as in the sink's own layout
	keyed   bool // the table stores Event.Key (migration 2): writes are idempotent
}

// columns returns the table's column types, reading them from the catalog
// the first time it can: one round trip in the sink's life, not one per
// event. Until the table exists, or while the database cannot be reached,
// it returns nil and the server has the last word.
func (p *Postgres) columns(ctx context.Context) *columns {
	if c := p.cols.Load(); c != nil {
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, p.writeTimeout)
	defer cancel()
	var (
		c     columns
		found bool
	)
	err := p.x.Query(ctx, columnsSQL, []any{p.sql.table, p.sql.subjectName}, func(row pgdriver.Row) error {
		var (
			name, typ string
			domain    bool
			typmod    int32
		)
		if err := row.Scan(&name, &typ, &domain, &typmod); err != nil {
			return err
		}
		if name == "event_key" && name != p.sql.subjectName {
			c.keyed = true
			return nil
		}
		if name == "id" && name != p.sql.subjectName {
			c.intID = typ == "int2" || typ == "int4" || typ == "int8"
			return nil
		}
		c.subject.typ, c.subject.domain = typ, domain
		if (typ == "varchar" || typ == "bpchar") && typmod > 4 {
			c.subject.maxLen = int(typmod - 4) // atttypmod counts the 4-byte varlena header
		}
		found = true
		return nil
	})
	if err != nil || !found {
		return nil
	}
	p.cols.Store(&c)
	return &c
}

// column returns the subject column's type, or nil while it is unknown.
func (p *Postgres) column(ctx context.Context) *subjectColumn {
	if c := p.columns(ctx); c != nil {
		return &c.subject
	}
	return nil
}

// keyed reports whether the table stores Event.Key. A table whose
// columns are not known yet, or one a host made without the key column,
// is written without keys, as before they existed.
func (p *Postgres) keyed(ctx context.Context) bool {
	c := p.columns(ctx)
	return c != nil && c.keyed
}

// known returns what is already known of the table, without asking.
func (p *Postgres) known() *columns { return p.cols.Load() }

// misfit reports whether err may be a subject refused by its column: the
// server refusing a value's text for its type (invalid_text_representation,
// numeric_value_out_of_range, string_data_right_truncation and the rest of
// class 22, data exception), a domain's CHECK (check_violation), or pgx
// failing to encode a subject for COPY, which it reports by cancelling the
// COPY (query_canceled, "COPY from stdin failed": the subject is the only
// value the sink does not send as text or a time).
func misfit(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || pgErr.Code == "23514" ||
		(pgErr.Code == "57014" && strings.HasPrefix(pgErr.Message, "COPY from stdin failed"))
}
