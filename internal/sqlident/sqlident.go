package sqlident

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest identifier PostgreSQL keeps intact, in bytes.
const MaxLen = 63

// ErrInvalid is wrapped by every error this package returns.
var ErrInvalid = errors.New("sqlident: invalid identifier")

// Validate reports whether name is a plain identifier, optionally qualified
// by one schema ("schema.table"). The error wraps [ErrInvalid] and says what
// is wrong.
func Validate(name string) error {
	_, err := Quote(name)
	return err
}

// ValidateIdent reports whether ident is one plain, unqualified identifier,
// such as a column name. The error wraps [ErrInvalid].
func ValidateIdent(ident string) error {
	_, err := QuoteIdent(ident)
	return err
}

// Quote validates name, optionally qualified by one schema, and returns it
// with every part double-quoted: `events` → `"events"`,
// `audit.events` → `"audit"."events"`.
func Quote(name string) (string, error) {
	schema, rel, qualified := strings.Cut(name, ".")
	if !qualified {
		return QuoteIdent(name)
	}
	if strings.Contains(rel, ".") {
		return "", fmt.Errorf("%w %q: at most one schema qualifier is allowed", ErrInvalid, name)
	}
	for _, part := range []string{schema, rel} {
		if err := check(part); err != nil {
			return "", fmt.Errorf("%w %q: %q %s", ErrInvalid, name, part, err)
		}
	}
	return `"` + schema + `"."` + rel + `"`, nil
}

// QuoteIdent validates ident as one unqualified identifier and returns it
// double-quoted: `workspace_id` → `"workspace_id"`.
func QuoteIdent(ident string) (string, error) {
	if strings.Contains(ident, ".") {
		return "", fmt.Errorf("%w %q: must not be schema-qualified", ErrInvalid, ident)
	}
	if err := check(ident); err != nil {
		return "", fmt.Errorf("%w %q: %s", ErrInvalid, ident, err)
	}
	return `"` + ident + `"`, nil
}

// check describes what is wrong with one identifier part, or returns nil.
// Its message is completed by the caller, which wraps ErrInvalid.
func check(part string) error {
	switch {
	case part == "":
		return errors.New("is empty")
	case len(part) > MaxLen:
		return fmt.Errorf("is %d bytes, longer than %d", len(part), MaxLen)
	}
	for i := 0; i < len(part); i++ {
		c := part[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			r, _ := utf8.DecodeRuneInString(part[i:])
			return fmt.Errorf("has %q at byte %d; only ASCII letters, digits and underscores are allowed, not starting with a digit", r, i)
		}
	}
	return nil
}
