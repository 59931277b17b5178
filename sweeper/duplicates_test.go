package sweeper

import (
	"context"
	"testing"
	"time"

	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// An inventory that lists an instance twice (a paging API can) must not
// have it counted twice: the breakers and the report count instances.
func TestRowGoneCountsAnInstanceListedTwiceOnce(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	inv := inventoryFunc(func(context.Context) ([]teardown.Instance, error) {
		in := teardown.Instance{ID: "i-lost", State: "running", LaunchedAt: old}
		return []teardown.Instance{in, in}, nil
	})
	stop := &recorder{}
	sw := newSweeper(t, store.NewMemory(table), stop, WithRowGone(inv, RowGone{MaxFraction: 1}))
	for pass := 1; pass <= 2; pass++ {
		rep, err := sw.SweepOnce(t.Context())
		if err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		if rep.RowGoneSeen != 1 {
			t.Errorf("pass %d: RowGoneSeen = %d, want 1", pass, rep.RowGoneSeen)
		}
		if pass == 2 && rep.RowGoneTerminated != 1 {
			t.Errorf("pass 2: RowGoneTerminated = %d, want 1", rep.RowGoneTerminated)
		}
	}
}
