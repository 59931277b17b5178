package store

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"

	"github.com/leakless/leakless/internal/sqlident"
)

// maxRemoved bounds the Removed status value: it is spliced into SQL as a
// literal, so it is kept to the size of a status, not of a document.
const maxRemoved = 255

// names is a validated Table (and schema option) ready to splice into SQL:
// every identifier quoted, the removed status a quoted literal.
type names struct {
	table, id, status, instance, parent string
	location                            string // the location column, quoted; "" when the Table has none
	in                                  string // the location filter on a host row h: "" unless the store is scoped
	removed                             string
	schema                              string // "" when unqualified
	attempts, leases                    string
	migrations                          string // the version table, in the library tables' schema
	pendingIndex, provisioningIndex     string
	removedIndex                        string
	oldPendingIndex                     string // qualified as the table is: DROP INDEX names it alone
}

// quote validates t and the schema option and quotes them. Errors wrap
// ErrConfig.
func (t Table) quote(schema string) (names, error) {
	var n names
	var err error
	bad := func(field string, err error) (names, error) {
		return names{}, fmt.Errorf("%w: %s: %w", ErrConfig, field, err)
	}
	if n.table, err = sqlident.Quote(t.Name); err != nil {
		return bad("Table.Name", err)
	}
	for _, c := range []struct {
		field string
		name  string
		dst   *string
	}{
		{"Table.ID", t.ID, &n.id},
		{"Table.Status", t.Status, &n.status},
		{"Table.InstanceID", t.InstanceID, &n.instance},
	} {
		if *c.dst, err = sqlident.QuoteIdent(c.name); err != nil {
			return bad(c.field, err)
		}
	}
	if t.Parent != "" {
		if n.parent, err = sqlident.QuoteIdent(t.Parent); err != nil {
			return bad("Table.Parent", err)
		}
	}
	if t.Location != "" {
		if n.location, err = sqlident.QuoteIdent(t.Location); err != nil {
			return bad("Table.Location", err)
		}
	}
	seen := map[string]string{}
	for _, c := range []struct{ field, name string }{
		{"Table.ID", t.ID}, {"Table.Status", t.Status}, {"Table.InstanceID", t.InstanceID}, {"Table.Parent", t.Parent},
		{"Table.Location", t.Location},
	} {
		if c.name == "" {
			continue
		}
		if other, dup := seen[c.name]; dup {
			return bad(c.field, fmt.Errorf("%q is also %s: each must be its own column", c.name, other))
		}
		seen[c.name] = c.field
	}
	if err := validRemoved(t.Removed); err != nil {
		return bad("Table.Removed", err)
	}
	n.removed = quoteLiteral(t.Removed)

	n.attempts, n.leases, n.migrations = `"leakless_attempts"`, `"leakless_leases"`, `"leakless_migrations"`
	if schema != "" {
		if n.schema, err = sqlident.QuoteIdent(schema); err != nil {
			return bad("WithSchema", err)
		}
		n.attempts = n.schema + "." + n.attempts
		n.leases = n.schema + "." + n.leases
		n.migrations = n.schema + "." + n.migrations
	}

	// CREATE INDEX puts the index in its table's schema, so the name is
	// unqualified and derived from the table's own name.
	tableSchema, rel, ok := strings.Cut(t.Name, ".")
	if !ok {
		tableSchema, rel = "", t.Name
	}
	n.pendingIndex = `"` + indexName("leakless_unreaped_", rel) + `"`
	n.provisioningIndex = `"` + indexName("leakless_provisioning_", rel) + `"`
	n.removedIndex = `"` + indexName("leakless_removed_", rel) + `"`
	n.oldPendingIndex = `"` + indexName("leakless_pending_", rel) + `"`
	if tableSchema != "" {
		q, err := sqlident.QuoteIdent(tableSchema)
		if err != nil {
			return bad("Table.Name", err)
		}
		n.oldPendingIndex = q + "." + n.oldPendingIndex
	}
	return n, nil
}

// validRemoved reports whether v can be the Removed status literal.
func validRemoved(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("is empty; it must name the host's terminal status, e.g. %q", "removed")
	case len(v) > maxRemoved:
		return fmt.Errorf("is %d bytes, longer than %d", len(v), maxRemoved)
	case !utf8.ValidString(v):
		return fmt.Errorf("%q is not valid UTF-8", v)
	case strings.ContainsRune(v, 0):
		return fmt.Errorf("%q contains a NUL byte, which PostgreSQL text cannot hold", v)
	}
	return nil
}

// quoteLiteral returns s as a SQL string literal. A backslash makes it an
// escape-string literal (E-prefixed) with the backslash doubled, so the
// value reads the same whatever the server's standard_conforming_strings.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// indexName is prefix+rel, shortened with a hash of rel when it would pass
// PostgreSQL's identifier limit (which would otherwise truncate it silently,
// and two long table names could then collide).
func indexName(prefix, rel string) string {
	name := prefix + rel
	if len(name) <= sqlident.MaxLen {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(rel))
	suffix := fmt.Sprintf("_%08x", h.Sum32())
	return name[:sqlident.MaxLen-len(suffix)] + suffix
}

// scoped returns n with the location filter for location, which must fit
// in a literal as a status does. Rows whose location column is NULL or ”
// are the default location, "".
func (n names) scoped(location string) (names, error) {
	if n.location == "" {
		return names{}, fmt.Errorf("%w: In(%q): the Table names no Location column", ErrConfig, location)
	}
	if location != "" {
		if err := validRemoved(location); err != nil {
			return names{}, fmt.Errorf("%w: In: location %w", ErrConfig, err)
		}
	}
	n.in = "\n      AND COALESCE(h." + n.location + "::text, '') = " + quoteLiteral(location)
	return n, nil
}
