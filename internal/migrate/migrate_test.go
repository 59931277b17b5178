package migrate

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSplit(t *testing.T) {
	got := Split(`-- why the first
CREATE TABLE t (
    a int -- a column
);

-- why the second
DROP INDEX IF EXISTS i;
SELECT 1`)
	want := []string{"CREATE TABLE t (\n    a int -- a column\n)", "DROP INDEX IF EXISTS i", "SELECT 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("Split = %q, want %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	up := func(s string) string { return strings.ToUpper(s) }
	vs, err := Load(fstest.MapFS{
		"m/002_second.sql": {Data: []byte("b;\n")},
		"m/001_first.sql":  {Data: []byte("a;\nc;\n")},
	}, "m", up)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Version != 1 || vs[0].Name != "first" || !slices.Equal(vs[0].Stmts, []string{"A", "C"}) || vs[1].Name != "second" {
		t.Fatalf("Load = %+v", vs)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/001_a.sql": {}, "m/003_c.sql": {}},
		"no name":  {"m/001.sql": {}},
		"not sql":  {"m/001_a.txt": {}},
		"bad num":  {"m/x_a.sql": {}},
		"no start": {"m/002_b.sql": {}},
	} {
		if _, err := Load(fsys, "m", up); err == nil {
			t.Errorf("Load with %s: no error", name)
		}
	}
}

func TestScriptRecordsItself(t *testing.T) {
	s := &Set{Component: "store:o'brien", Table: `"leakless_migrations"`, Prelude: []string{"CREATE SCHEMA x"},
		Versions: []Version{{Version: 1, Name: "initial", Stmts: []string{"A"}}, {Version: 2, Name: "more", Stmts: []string{"B"}}}}
	one := s.Script(s.Versions[0])
	if !strings.HasPrefix(one, "CREATE SCHEMA x;\n\nCREATE TABLE IF NOT EXISTS \"leakless_migrations\"") ||
		!strings.HasSuffix(one, "A;\n\nINSERT INTO \"leakless_migrations\" (component, version, name) VALUES ('store:o''brien', 1, 'initial') ON CONFLICT (component, version) DO NOTHING;\n") {
		t.Fatalf("Script(1) =\n%s", one)
	}
	if two := s.Script(s.Versions[1]); strings.Contains(two, "CREATE") || !strings.HasPrefix(two, "B;\n\nINSERT") {
		t.Fatalf("Script(2) =\n%s\nwant B and its record alone", two)
	}
	for cur, want := range map[int]string{0: "version 0, the code expects 2", 1: "apply versions 2 to 2", 2: "", 3: "newer than the 2"} {
		if got := s.Check(cur); want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("Check(%d) = %q, want %q", cur, got, want)
		}
	}
}
