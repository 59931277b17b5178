package readme

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGoBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# x\n\n## A\n\n```go\none\n```\n\n```sh\nnot go\n```\n\n```go\ntwo\n```\n\n## B\n\n```go\nthree\n```\n")
	if got, err := GoBlocks(path, "A"); err != nil || !slices.Equal(got, []string{"one\n", "two\n"}) {
		t.Errorf("section A: %q, %v; want its two Go blocks", got, err)
	}
	if got, err := GoBlocks(path, "B"); err != nil || !slices.Equal(got, []string{"three\n"}) {
		t.Errorf("section B: %q, %v; want its one Go block", got, err)
	}
	if _, err := GoBlocks(path, "C"); err == nil {
		t.Error("a missing section: nil error, want one")
	}
	write("## A\n\n```go\nunterminated\n")
	if _, err := GoBlocks(path, "A"); err == nil {
		t.Error("an unterminated block: nil error, want one")
	}
}
