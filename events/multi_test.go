package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/leakless/leakless/events"
)

// failing is a sink that always fails with err.
type failing struct{ err error }

func (f failing) Emit(context.Context, events.Event) error { return f.err }

func TestMultiEmitsToAllAndJoinsErrors(t *testing.T) {
	errA, errB := errors.New("sink a down"), errors.New("sink b down")
	first, last := events.NewMemory(), events.NewMemory()
	s := events.Multi(first, failing{errA}, nil, failing{errB}, last)

	err := s.Emit(context.Background(), events.Event{Type: "t"})
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Errorf("Emit = %v; want an error that is both sinks' errors", err)
	}
	if len(first.Events()) != 1 || len(last.Events()) != 1 {
		t.Errorf("first got %d events, last got %d; want 1 each, failures in between notwithstanding", len(first.Events()), len(last.Events()))
	}
}

func TestMultiSucceedsWhenEverySinkDoes(t *testing.T) {
	a, b := events.NewMemory(), events.NewMemory()
	if err := events.Multi(a, b).Emit(context.Background(), events.Event{Type: "t"}); err != nil {
		t.Errorf("Emit = %v; want nil", err)
	}
	if err := events.Multi().Emit(context.Background(), events.Event{Type: "t"}); err != nil {
		t.Errorf("Multi().Emit = %v; want nil", err)
	}
	if len(a.Events()) != 1 || len(b.Events()) != 1 {
		t.Errorf("a got %d, b got %d; want 1 each", len(a.Events()), len(b.Events()))
	}
}

func TestBestEffortNeverFailsAndLogsTheLostEvent(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	s := events.BestEffort(failing{errors.New("connection refused")}, log)

	e := events.Event{Type: events.TypeReapFailed, Subject: "ws-1", Payload: map[string]any{"instance_id": "i-0abc"}}
	if err := s.Emit(context.Background(), e); err != nil {
		t.Fatalf("Emit = %v; want nil", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if rec["level"] != "ERROR" || rec["type"] != events.TypeReapFailed || rec["subject"] != "ws-1" ||
		rec["error"] != "connection refused" || rec["payload"].(map[string]any)["instance_id"] != "i-0abc" {
		t.Errorf("logged %s; want an ERROR record with the event's type, subject, payload and the error", buf.String())
	}
}

func TestBestEffortIsSilentWhenTheSinkWrites(t *testing.T) {
	var buf bytes.Buffer
	m := events.NewMemory()
	s := events.BestEffort(m, slog.New(slog.NewTextHandler(&buf, nil)))
	if err := s.Emit(context.Background(), events.Event{Type: "t"}); err != nil {
		t.Fatalf("Emit = %v; want nil", err)
	}
	if buf.Len() != 0 || len(m.Events()) != 1 {
		t.Errorf("logged %q and stored %d events; want no log and 1 event", buf.String(), len(m.Events()))
	}
}

func TestBestEffortNilLoggerUsesDefault(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	if err := events.BestEffort(failing{errors.New("boom")}, nil).Emit(context.Background(), events.Event{Type: "t"}); err != nil {
		t.Fatalf("Emit = %v; want nil", err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("error=boom")) {
		t.Errorf("default logger got %q; want the failure logged there", buf.String())
	}
}
