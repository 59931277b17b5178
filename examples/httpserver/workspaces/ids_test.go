package workspaces_test

import (
	"strings"
	"testing"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
)

func TestParseID(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"", "", false},
		{"0f8fad5b-d9cb-469f-a165-70867728950", "", false},      // 35 characters
		{"0f8fad5bd9cb-469f-a165-70867728950e0", "", false},     // hyphen misplaced
		{"0f8fad5b-d9cb-469f-a165-70867728950g", "", false},     // not hex
		{"0f8fad5b-d9cb-469f-a165-7086772895\u00e9", "", false}, // multi-byte
		{"{f8fad5b-d9cb-469f-a165-70867728950e", "", false},
	}
	for _, c := range cases {
		got, ok := workspaces.ParseID(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseID(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestNewIDIsAVersion4UUID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := workspaces.NewID()
		if got, ok := workspaces.ParseID(id); !ok || got != id {
			t.Fatalf("NewID() = %q, not a lower-case UUID", id)
		}
		if id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("NewID() = %q: version or variant bits wrong", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950E", "", "nope", strings.Repeat("-", 36)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := workspaces.ParseID(s)
		if !ok {
			if got != "" {
				t.Fatalf("ParseID(%q) rejected but returned %q", s, got)
			}
			return
		}
		if !strings.EqualFold(got, s) || got != strings.ToLower(got) || len(got) != 36 {
			t.Fatalf("ParseID(%q) = %q", s, got)
		}
		if again, ok := workspaces.ParseID(got); !ok || again != got {
			t.Fatalf("ParseID(ParseID(%q)) = %q, %v", s, again, ok)
		}
	})
}
