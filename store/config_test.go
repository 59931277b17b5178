package store

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/sqlident"
)

func TestNewRejectsBadConfiguration(t *testing.T) {
	good := testTable(true)
	with := func(edit func(*Table)) Table {
		tbl := good
		edit(&tbl)
		return tbl
	}
	tests := []struct {
		name  string
		table Table
		opts  []Option
		field string // named in the error
	}{
		{"empty table name", with(func(t *Table) { t.Name = "" }), nil, "Table.Name"},
		{"table name with a space", with(func(t *Table) { t.Name = "work spaces" }), nil, "Table.Name"},
		{"table name with two qualifiers", with(func(t *Table) { t.Name = "a.b.c" }), nil, "Table.Name"},
		{"table name injecting SQL", with(func(t *Table) { t.Name = "w; DROP TABLE w" }), nil, "Table.Name"},
		{"empty id column", with(func(t *Table) { t.ID = "" }), nil, "Table.ID"},
		{"qualified status column", with(func(t *Table) { t.Status = "w.status" }), nil, "Table.Status"},
		{"instance column starting with a digit", with(func(t *Table) { t.InstanceID = "1instance" }), nil, "Table.InstanceID"},
		{"parent column with a quote", with(func(t *Table) { t.Parent = `parent"id` }), nil, "Table.Parent"},
		{"long column", with(func(t *Table) { t.ID = strings.Repeat("i", sqlident.MaxLen+1) }), nil, "Table.ID"},
		{"missing removed status", with(func(t *Table) { t.Removed = "" }), nil, "Table.Removed"},
		{"removed status with NUL", with(func(t *Table) { t.Removed = "re\x00moved" }), nil, "Table.Removed"},
		{"removed status not UTF-8", with(func(t *Table) { t.Removed = "\xffremoved" }), nil, "Table.Removed"},
		{"removed status too long", with(func(t *Table) { t.Removed = strings.Repeat("r", maxRemoved+1) }), nil, "Table.Removed"},
		{"qualified schema", good, []Option{WithSchema("a.b")}, "WithSchema"},
		{"schema injecting SQL", good, []Option{WithSchema("x; --")}, "WithSchema"},
		{"negative redrive grace", good, []Option{WithRedriveGrace(-time.Second)}, "WithRedriveGrace"},
	}
	db := &sql.DB{} // never used: construction fails first
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := NewSQL(db, tt.table, tt.opts...)
			if st != nil || !errors.Is(err, ErrConfig) {
				t.Fatalf("NewSQL = %v, %v; want nil and an error wrapping ErrConfig", st, err)
			}
			if !strings.HasPrefix(err.Error(), "store: ") || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not start with store: and name %s", err, tt.field)
			}
		})
	}
}

func TestNewRejectsNilDatabase(t *testing.T) {
	if _, err := NewPgx(nil, testTable(true)); !errors.Is(err, ErrConfig) {
		t.Errorf("NewPgx(nil) error = %v, want ErrConfig", err)
	}
	if _, err := NewSQL(nil, testTable(true)); !errors.Is(err, ErrConfig) {
		t.Errorf("NewSQL(nil) error = %v, want ErrConfig", err)
	}
}

func TestNewAcceptsQualifiedNamesAndAnyRemovedText(t *testing.T) {
	tbl := Table{Name: "app.Workspaces", ID: "ID", Status: "state", InstanceID: "ec2_id", Removed: `it's "removed" \ gone`}
	if _, err := NewSQL(&sql.DB{}, tbl, WithSchema("leakless")); err != nil {
		t.Fatalf("NewSQL: %v", err)
	}
}

func TestQuoteLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"removed":    `'removed'`,
		"it's":       `'it''s'`,
		`back\slash`: `E'back\\slash'`,
		`'\'`:        `E'''\\'''`,
	} {
		if got := quoteLiteral(in); got != want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestIndexNameStaysWithinTheIdentifierLimit(t *testing.T) {
	if got := indexName("leakless_pending_", "workspaces"); got != "leakless_pending_workspaces" {
		t.Fatalf("short name = %q, want it unchanged", got)
	}
	a := indexName("leakless_provisioning_", strings.Repeat("t", 60)+"_a")
	b := indexName("leakless_provisioning_", strings.Repeat("t", 60)+"_b")
	if len(a) != sqlident.MaxLen || len(b) != sqlident.MaxLen || a == b {
		t.Fatalf("long names %q (%d bytes) and %q (%d bytes): want %d bytes each and distinct", a, len(a), b, len(b), sqlident.MaxLen)
	}
	if err := sqlident.ValidateIdent(a); err != nil {
		t.Fatalf("shortened name is not a plain identifier: %v", err)
	}
}
