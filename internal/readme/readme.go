// Package readme reads the Go code blocks of one section of a README, for
// tests that keep the README's code the same as code that compiles and is
// tested.
package readme

import (
	"fmt"
	"os"
	"strings"
)

// GoBlocks returns the ```go blocks of the section of the Markdown file at
// path whose heading line is "## "+heading, up to the next "## " heading,
// in order. A missing section or an unterminated block is an error.
func GoBlocks(path, heading string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, section, ok := strings.Cut(string(b), "\n## "+heading+"\n")
	if !ok {
		return nil, fmt.Errorf("readme: %s has no section %q", path, heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for rest := section; ; {
		_, after, ok := strings.Cut(rest, "```go\n")
		if !ok {
			return blocks, nil
		}
		block, tail, ok := strings.Cut(after, "```\n")
		if !ok {
			return nil, fmt.Errorf("readme: an unterminated Go block in section %q of %s", heading, path)
		}
		blocks = append(blocks, block)
		rest = tail
	}
}
