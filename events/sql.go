package events

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/leakless/leakless/internal/sqlident"
)

// maxParams is PostgreSQL's limit on bind parameters in one statement: the
// wire protocol counts them in an int16.
const maxParams = 65535

// eventColumns is how many values one event binds.
const eventColumns = 4

// One chunk of a batch must fit in one statement.
var _ [maxParams - BatchChunk*eventColumns]struct{}

// statements is every statement the Postgres sink runs, built once from the
// validated, quoted names. Values are always bind parameters.
type statements struct {
	table   string // quoted, possibly schema-qualified
	subject string // quoted
	// tableName and subjectName are as configured, unquoted, for the catalog.
	tableName, subjectName string

	insertInto string // INSERT INTO ... VALUES, without the rows
	insert     string // one event: $1 type, $2 subject, $3 payload, $4 created_at

	// copyTable and copyColumns name the COPY target for pgx's CopyFrom,
	// which quotes them itself.
	copyTable   pgx.Identifier
	copyColumns []string
}

func newStatements(c config) statements {
	table, _ := sqlident.Quote(c.table) // validated by newConfig
	subject, _ := sqlident.QuoteIdent(c.subject)
	s := statements{
		table:       table,
		subject:     subject,
		tableName:   c.table,
		subjectName: c.subject,
		insertInto:  `INSERT INTO ` + table + ` (event_type, ` + subject + `, payload, created_at) VALUES `,

		copyTable:   pgx.Identifier(strings.Split(c.table, ".")),
		copyColumns: []string{"event_type", c.subject, "payload", "created_at"},
	}
	s.insert = s.insertRows(1)
	return s
}

// indexName derives an index name from the table's, cut so that the whole
// stays within PostgreSQL's 63-byte identifier limit.
func indexName(relation, suffix string) string {
	if len(relation)+len(suffix) > sqlident.MaxLen {
		relation = relation[:sqlident.MaxLen-len(suffix)]
	}
	return `"` + relation + suffix + `"`
}

// insertRows returns a multi-row INSERT for n events: $1..$4 for the first,
// $5..$8 for the second, and so on. n·eventColumns must not exceed maxParams.
func (s *statements) insertRows(n int) string {
	var b strings.Builder
	b.Grow(len(s.insertInto) + n*24)
	b.WriteString(s.insertInto)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		for j := range eventColumns {
			if j == 0 {
				b.WriteString("($")
			} else {
				b.WriteString(", $")
			}
			b.WriteString(strconv.Itoa(i*eventColumns + j + 1))
		}
		b.WriteString(")")
	}
	return b.String()
}

// list returns the query for f, with its arguments. Only the filters that
// are set appear, so the planner can use the index that fits. The subject is
// compared with the column's own type, so an index on a uuid column is used;
// a subject the column cannot hold (misfit) is looked for where Emit kept
// it, in the payload. Before is a keyset on List's own order, (created_at,
// id), found by the primary key.
func (s *statements) list(f Filter, misfit, intID bool) (string, []any) {
	var (
		b    strings.Builder
		args []any
	)
	id := "id"
	if !intID {
		id = "0::bigint" // a host table keyed by uuid: no ID to page by
	}
	b.WriteString(`SELECT ` + id + `, event_type, coalesce(` + s.subject + `::text, ''), payload::text, created_at FROM ` + s.table)
	where := func(cond string, arg any) {
		if len(args) == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		args = append(args, arg)
		b.WriteString(cond + strconv.Itoa(len(args)))
	}
	if f.Type != "" {
		where("event_type = $", f.Type)
	}
	switch {
	case f.Subject != "" && misfit:
		where(s.subject+" IS NULL AND payload->>'"+SubjectTextKey+"' = $", f.Subject)
	case f.Subject != "":
		where(s.subject+" = $", f.Subject)
	}
	if !f.Since.IsZero() {
		where("created_at >= $", f.Since)
	}
	if !f.Until.IsZero() {
		where("created_at < $", f.Until)
	}
	if f.Before != 0 {
		where("(created_at, id) < (SELECT created_at, id FROM "+s.table+" WHERE id = $", f.Before)
		b.WriteString(")")
	}
	b.WriteString(" ORDER BY created_at DESC, id DESC")
	if f.Limit > 0 {
		args = append(args, f.Limit)
		b.WriteString(" LIMIT $" + strconv.Itoa(len(args)))
	}
	return b.String(), args
}
