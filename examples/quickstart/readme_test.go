package quickstart_test

import (
	"os"
	"strings"
	"testing"

	"github.com/leakless/leakless/internal/readme"
)

// The README's quickstart shows this package's code; every Go block in
// that section must appear verbatim in quickstart.go, so the README cannot
// drift from code that compiles and is tested.
func TestREADMEQuickstart(t *testing.T) {
	blocks, err := readme.GoBlocks("../../README.md", "Quickstart")
	if err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile("quickstart.go")
	if err != nil {
		t.Fatal(err)
	}
	for i, block := range blocks {
		if !strings.Contains(string(code), block) {
			t.Errorf("Quickstart block %d is not in quickstart.go:\n%s", i+1, block)
		}
	}
	if len(blocks) < 3 {
		t.Errorf("Quickstart has %d Go blocks, want the wiring, the handler and the sweeper", len(blocks))
	}
}
