package store

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(benchCleanup{m})
}

// benchCleanup drops the benchmarks' shared tables, if they built them, after
// every test and benchmark has run and before goleak looks for leftovers.
type benchCleanup struct{ m *testing.M }

func (b benchCleanup) Run() int {
	code := b.m.Run()
	dropBenchTable()
	dropBacklogTable()
	return code
}
