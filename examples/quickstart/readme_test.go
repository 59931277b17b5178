package quickstart_test

import (
	"os"
	"strings"
	"testing"
)

// The README's quickstart shows this package's code; every Go block in
// that section must appear verbatim in quickstart.go, so the README cannot
// drift from code that compiles and is tested.
func TestREADMEQuickstart(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile("quickstart.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Quickstart\n")
	if !ok {
		t.Fatal("README.md has no Quickstart section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	blocks := 0
	for rest := section; ; {
		_, after, ok := strings.Cut(rest, "```go\n")
		if !ok {
			break
		}
		block, tail, ok := strings.Cut(after, "```\n")
		if !ok {
			t.Fatal("unterminated Go block in the Quickstart section")
		}
		blocks++
		if !strings.Contains(string(code), block) {
			t.Errorf("Quickstart block %d is not in quickstart.go:\n%s", blocks, block)
		}
		rest = tail
	}
	if blocks < 3 {
		t.Errorf("Quickstart has %d Go blocks, want the wiring, the handler and the sweeper", blocks)
	}
}
