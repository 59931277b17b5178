package events_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/leakless/leakless/events"
)

func TestMemoryKeepsEmitOrder(t *testing.T) {
	m := events.NewMemory()
	for _, typ := range []string{"a", "b", "c"} {
		if err := m.Emit(context.Background(), events.Event{Type: typ}); err != nil {
			t.Fatalf("Emit = %v; want nil", err)
		}
	}
	got := m.Events()
	if len(got) != 3 || got[0].Type != "a" || got[1].Type != "b" || got[2].Type != "c" {
		t.Fatalf("Events() = %+v; want a, b, c", got)
	}
}

func TestMemoryEventsIsACopy(t *testing.T) {
	m := events.NewMemory()
	payload := map[string]any{"k": "original"}
	_ = m.Emit(context.Background(), events.Event{Type: "a", Payload: payload})
	payload["k"] = "changed by the emitter"

	got := m.Events()
	got[0].Type = "changed by the reader"
	got[0].Payload["k"] = "changed by the reader"

	again := m.Events()
	if again[0].Type != "a" || again[0].Payload["k"] != "original" {
		t.Errorf("Events() = %+v after the emitter and a reader changed their copies; want the original event", again[0])
	}
}

func TestMemoryIsSafeForConcurrentUse(t *testing.T) {
	var m events.Memory // the zero value works too
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				_ = m.Emit(context.Background(), events.Event{Type: fmt.Sprint(g), Subject: fmt.Sprint(i)})
				_ = m.Events()
			}
		})
	}
	wg.Wait()
	got := m.Events()
	if len(got) != 800 {
		t.Fatalf("%d events; want 800", len(got))
	}
	// Each goroutine's events stay in its own emit order.
	next := map[string]int{}
	for _, e := range got {
		if e.Subject != fmt.Sprint(next[e.Type]) {
			t.Fatalf("goroutine %s: event %s out of order; want %d", e.Type, e.Subject, next[e.Type])
		}
		next[e.Type]++
	}
}
