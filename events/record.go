package events

import (
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// record is an event ready to bind: its payload already marshalled.
type record struct {
	typ, subject, payload string
	at                    time.Time
	key                   string // "" for none
}

// appendArgs appends r's bind values in the column order of
// statements.insert, or with keyed of statements.insertKeyed. An empty
// subject (or key) is NULL, so a uuid or integer subject column accepts
// events without one.
func (r *record) appendArgs(args []any, keyed bool) []any {
	var subject, key any
	if r.subject != "" {
		subject = r.subject
	}
	if !keyed {
		return append(args, r.typ, subject, r.payload, r.at)
	}
	if r.key != "" {
		key = r.key
	}
	return append(args, r.typ, subject, r.payload, r.at, key)
}

// insertArgs is the INSERT of recs and its arguments: with keys when any
// record has one.
func (s *statements) insertArgs(recs []record) (string, []any) {
	keyed := slices.ContainsFunc(recs, func(r record) bool { return r.key != "" })
	cols := copyColumns
	if keyed {
		cols = eventColumns
	}
	args := make([]any, 0, len(recs)*cols)
	for i := range recs {
		args = recs[i].appendArgs(args, keyed)
	}
	return s.insertRows(len(recs), keyed), args
}

// copySource feeds records to CopyFrom without building a [][]any.
type copySource struct {
	recs []record
	i    int
	row  [copyColumns]any
}

func (c *copySource) Next() bool { c.i++; return c.i < len(c.recs) }
func (c *copySource) Err() error { return nil }

// Values reuses one slice: CopyFrom encodes each row before asking for the next.
func (c *copySource) Values() ([]any, error) {
	r := &c.recs[c.i]
	c.row[0], c.row[1], c.row[2], c.row[3] = r.typ, nil, r.payload, r.at
	if r.subject != "" {
		c.row[1] = subjectArg(r.subject)
	}
	return c.row[:], nil
}

// subjectArg is a subject on its way into COPY's binary format, which,
// unlike a bind parameter sent as text, must be encoded as the column's own
// type. It knows how to be text, a uuid or an integer.
type subjectArg string

// TextValue encodes the subject for a text or varchar column.
func (s subjectArg) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(s), Valid: true}, nil
}

// UUIDValue encodes the subject for a uuid column.
func (s subjectArg) UUIDValue() (pgtype.UUID, error) {
	var u pgtype.UUID
	if err := u.Scan(string(s)); err != nil {
		return u, fmt.Errorf("subject %q is not a uuid: %w", string(s), err)
	}
	return u, nil
}

// Int64Value encodes the subject for an integer column.
func (s subjectArg) Int64Value() (pgtype.Int8, error) {
	var n pgtype.Int8
	if err := n.Scan(string(s)); err != nil {
		return n, fmt.Errorf("subject %q is not an integer: %w", string(s), err)
	}
	return n, nil
}
