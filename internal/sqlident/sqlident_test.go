package sqlident_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/leakless/leakless/internal/sqlident"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuote(t *testing.T) {
	long := strings.Repeat("a", sqlident.MaxLen)
	tests := []struct {
		name string
		want string // "" means an error wrapping ErrInvalid
	}{
		{"structure_events", `"structure_events"`},
		{"_x", `"_x"`},
		{"T1", `"T1"`},
		{"Events", `"Events"`},
		{"select", `"select"`},
		{"audit.events", `"audit"."events"`},
		{long, `"` + long + `"`},
		{long + "." + long, `"` + long + `"."` + long + `"`},

		{"", ""},
		{".", ""},
		{".events", ""},
		{"audit.", ""},
		{"a.b.c", ""},
		{"1events", ""},
		{"audit.1events", ""},
		{"events; drop table x", ""},
		{`ev"ents`, ""},
		{"ev ents", ""},
		{"ev-ents", ""},
		{"évents", ""},
		{"ev\x00ents", ""},
		{long + "a", ""},
		{long + "a.events", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			got, err := sqlident.Quote(tt.name)
			if tt.want == "" {
				if !errors.Is(err, sqlident.ErrInvalid) {
					t.Fatalf("Quote(%q) = %q, %v; want an error wrapping ErrInvalid", tt.name, got, err)
				}
				if got != "" {
					t.Errorf("Quote(%q) returned %q alongside its error; want \"\"", tt.name, got)
				}
				if verr := sqlident.Validate(tt.name); !errors.Is(verr, sqlident.ErrInvalid) {
					t.Errorf("Validate(%q) = %v; want an error wrapping ErrInvalid", tt.name, verr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Quote(%q) = %q, %v; want %q, nil", tt.name, got, err, tt.want)
			}
			if err := sqlident.Validate(tt.name); err != nil {
				t.Errorf("Validate(%q) = %v; want nil", tt.name, err)
			}
		})
	}
}

func TestQuoteIdent(t *testing.T) {
	tests := []struct {
		ident string
		want  string // "" means an error wrapping ErrInvalid
	}{
		{"workspace_id", `"workspace_id"`},
		{"subject_id", `"subject_id"`},
		{"a.b", ""},
		{"", ""},
		{"9lives", ""},
		{"id; --", ""},
		{strings.Repeat("x", sqlident.MaxLen+1), ""},
	}
	for _, tt := range tests {
		got, err := sqlident.QuoteIdent(tt.ident)
		if tt.want == "" {
			if !errors.Is(err, sqlident.ErrInvalid) {
				t.Errorf("QuoteIdent(%q) = %q, %v; want an error wrapping ErrInvalid", tt.ident, got, err)
			}
			if verr := sqlident.ValidateIdent(tt.ident); !errors.Is(verr, sqlident.ErrInvalid) {
				t.Errorf("ValidateIdent(%q) = %v; want an error wrapping ErrInvalid", tt.ident, verr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("QuoteIdent(%q) = %q, %v; want %q, nil", tt.ident, got, err, tt.want)
		}
		if err := sqlident.ValidateIdent(tt.ident); err != nil {
			t.Errorf("ValidateIdent(%q) = %v; want nil", tt.ident, err)
		}
	}
}

func TestErrorNamesTheProblem(t *testing.T) {
	tests := []struct{ name, want string }{
		{"events; drop table x", `sqlident: invalid identifier "events; drop table x": has ';' at byte 6`},
		{"", `sqlident: invalid identifier "": is empty`},
		{"a.b.c", "at most one schema qualifier"},
		{strings.Repeat("a", 64), "is 64 bytes, longer than 63"},
		{"x.évents", `"x.évents": "évents" has 'é' at byte 0`},
		{"1x.events", `"1x.events": "1x" has '1' at byte 0`},
	}
	for _, tt := range tests {
		_, err := sqlident.Quote(tt.name)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Quote(%q) error = %v; want it to contain %q", tt.name, err, tt.want)
		}
	}
	if _, err := sqlident.QuoteIdent("a.b"); err == nil || !strings.Contains(err.Error(), "must not be schema-qualified") {
		t.Errorf("QuoteIdent(%q) error = %v; want it to say the name must not be schema-qualified", "a.b", err)
	}
}

var quoted = regexp.MustCompile(`^"[A-Za-z_][A-Za-z0-9_]{0,62}"(\."[A-Za-z_][A-Za-z0-9_]{0,62}")?$`)

// FuzzQuote checks that whatever Quote accepts comes back as nothing but
// quoted plain identifiers that unquote to the input, and that whatever it
// rejects wraps ErrInvalid.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"structure_events", "audit.events", "events; drop table x", `a"b`, "a.b.c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := sqlident.Quote(name)
		if err != nil {
			if !errors.Is(err, sqlident.ErrInvalid) {
				t.Fatalf("Quote(%q) error %v does not wrap ErrInvalid", name, err)
			}
			if got != "" {
				t.Fatalf("Quote(%q) = %q alongside error %v", name, got, err)
			}
			return
		}
		if !quoted.MatchString(got) {
			t.Fatalf("Quote(%q) = %q, not one or two quoted plain identifiers", name, got)
		}
		if unquoted := strings.ReplaceAll(got, `"`, ""); unquoted != name {
			t.Fatalf("Quote(%q) = %q, which unquotes to %q", name, got, unquoted)
		}
		ident, identErr := sqlident.QuoteIdent(name)
		if strings.Contains(name, ".") != (identErr != nil) {
			t.Fatalf("QuoteIdent(%q) = %q, %v; Quote accepted it, so only a qualified name may fail", name, ident, identErr)
		}
	})
}
