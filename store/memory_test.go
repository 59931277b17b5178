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
