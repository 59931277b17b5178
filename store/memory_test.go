package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// In a synctest bubble the clock is fake, so the row's backoff really runs
// out rather than being rescheduled into the past.
func TestMemoryFailedHidesForDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := NewMemory(testTable(true))
		m.Put(Row{ID: "ws-1", Status: "removed", InstanceID: "i-1"})
		p := Pending{ResourceID: "ws-1", InstanceID: "i-1"}
		if err := m.Failed(ctx, p, errors.New("throttled"), time.Minute); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute - time.Nanosecond)
		if ps, _ := m.Pending(ctx, 10); len(ps) != 0 {
			t.Fatalf("Pending a nanosecond before due = %+v, want nothing", ps)
		}
		time.Sleep(time.Nanosecond)
		got, _ := m.Pending(ctx, 10)
		want := []Pending{{ResourceID: "ws-1", InstanceID: "i-1", Attempts: 1, LastError: "throttled"}}
		if !slices.Equal(got, want) {
			t.Fatalf("Pending once due = %+v, want %+v", got, want)
		}
	})
}

func TestMemoryPutGetDelete(t *testing.T) {
	m := NewMemory(testTable(true))
	r := Row{ID: "ws-1", Parent: "ws-0", Status: "active", InstanceID: "i-1"}
	m.Put(r)
	if got, ok := m.Get("ws-1"); !ok || got != r {
		t.Fatalf("Get = %+v, %v; want %+v", got, ok, r)
	}
	r.Status = "removed"
	m.Put(r)
	if got, _ := m.Get("ws-1"); got.Status != "removed" {
		t.Fatalf("Put did not replace the row: %+v", got)
	}
	m.Delete("ws-1")
	if _, ok := m.Get("ws-1"); ok {
		t.Fatal("Get after Delete found the row")
	}
}

// The grace is counted on the Memory's clock, time.Now, so a bubble's fake
// clock runs it out; a longer backoff already recorded is kept.
func TestMemoryRedriveGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := NewMemory(testTable(true))
		m.Put(Row{ID: "ws-1", Status: "active", InstanceID: "i-1"})
		m.Put(Row{ID: "ws-2", Parent: "ws-1", Status: "removed", InstanceID: "i-2"})
		if err := m.Failed(ctx, Pending{ResourceID: "ws-2", InstanceID: "i-2"}, errors.New("throttled"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := m.RemoveTree(ctx, "ws-1"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2*time.Minute - time.Nanosecond)
		if ps, _ := m.Pending(ctx, 10); len(ps) != 0 {
			t.Fatalf("Pending a nanosecond before the default grace is over = %+v, want nothing", ps)
		}
		time.Sleep(time.Nanosecond)
		if ps, _ := m.Pending(ctx, 10); !slices.Equal(ids(ps), []string{"ws-1"}) {
			t.Fatalf("Pending once the grace is over = %v, want ws-1 alone: ws-2's backoff runs an hour", ids(ps))
		}
		time.Sleep(time.Hour)
		if ps, _ := m.Pending(ctx, 10); !slices.Equal(ids(ps), []string{"ws-1", "ws-2"}) {
			t.Fatalf("Pending after the backoff = %v, want ws-1 and ws-2", ids(ps))
		}
	})
}

// NewMemory has no error to return; a bad option fails every call.
func TestMemoryBadOption(t *testing.T) {
	m := NewMemory(testTable(true), WithRedriveGrace(-time.Second))
	ctx := context.Background()
	_, errPending := m.Pending(ctx, 1)
	_, errTree := m.RemoveTree(ctx, "ws-1")
	_, errKnown := m.Known(ctx, nil, nil)
	for name, err := range map[string]error{
		"Pending": errPending, "RemoveTree": errTree, "Known": errKnown,
		"Failed": m.Failed(ctx, Pending{}, nil, 0), "Stopping": m.Stopping(ctx),
	} {
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s = %v, want an error wrapping ErrConfig", name, err)
		}
	}
}
