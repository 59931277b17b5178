package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Delays for Failed: due at once, and not due for the rest of the test.
const (
	dueNow   = time.Duration(0)
	dueLater = time.Hour
)

func mustPending(t *testing.T, st Store, limit int) []Pending {
	t.Helper()
	ps, err := st.Pending(context.Background(), limit)
	if err != nil {
		t.Fatalf("Pending(%d): %v", limit, err)
	}
	return ps
}

func mustFailed(t *testing.T, st Store, p Pending, err error, delay time.Duration) {
	t.Helper()
	if err := st.Failed(context.Background(), p, err, delay); err != nil {
		t.Fatalf("Failed(%+v): %v", p, err)
	}
}

func mustReaped(t *testing.T, st Store, p Pending) bool {
	t.Helper()
	ok, err := st.Reaped(context.Background(), p)
	if err != nil {
		t.Fatalf("Reaped(%+v): %v", p, err)
	}
	return ok
}

func mustRemoveTree(t *testing.T, st Store, root string) []Pending {
	t.Helper()
	ps, err := st.RemoveTree(context.Background(), root)
	if err != nil {
		t.Fatalf("RemoveTree(%s): %v", root, err)
	}
	return ps
}

// ids lists the resource ids of ps, in order.
func ids(ps []Pending) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.ResourceID)
	}
	return out
}

func wantIDs(t *testing.T, what string, got []Pending, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("%s: got rows %v, want %v", what, ids(got), want)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
