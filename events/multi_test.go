package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
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

// Batches pass through the wrapping sinks: a Postgres sink behind Multi or
// BestEffort still receives one EmitBatch, not an Emit per event.
func TestBatchesPassThroughWrappingSinks(t *testing.T) {
	page := []events.Event{{Type: "a", Subject: "1"}, {Type: "b", Subject: "2"}, {Type: "c", Subject: "3"}}
	for _, tt := range []struct {
		name string
		wrap func(events.Sink) events.Sink
	}{
		{"Multi", func(s events.Sink) events.Sink { return events.Multi(s) }},
		{"BestEffort", func(s events.Sink) events.Sink { return events.BestEffort(s, nil) }},
		{"Spool", func(s events.Sink) events.Sink { return events.Spool(s) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inner := &batchCounter{Memory: events.NewMemory()}
			s := tt.wrap(inner)
			if _, ok := s.(events.BatchSink); !ok {
				t.Fatalf("%s is not a BatchSink", tt.name)
			}
			if err := events.EmitAll(context.Background(), s, page); err != nil {
				t.Fatal(err)
			}
			if inner.batches != 1 || inner.emits != 0 || len(inner.Events()) != 3 {
				t.Errorf("inner sink saw %d batches, %d emits, %d events; want 1 batch of 3", inner.batches, inner.emits, len(inner.Events()))
			}
			if sp, ok := s.(*events.Spooler); ok {
				_ = sp.Close(context.Background())
			}
		})
	}
}

type batchCounter struct {
	*events.Memory
	batches, emits int
}

func (b *batchCounter) Emit(ctx context.Context, e events.Event) error {
	b.emits++
	return b.Memory.Emit(ctx, e)
}

func (b *batchCounter) EmitBatch(ctx context.Context, es []events.Event) error {
	b.batches++
	return b.Memory.EmitBatch(ctx, es)
}

// EmitAll on a sink without EmitBatch emits in order and stops at the
// first failure, saying how many were recorded.
func TestEmitAllWithoutBatches(t *testing.T) {
	var got []string
	s := sinkFunc(func(_ context.Context, e events.Event) error {
		if e.Subject == "3" {
			return errors.New("down")
		}
		got = append(got, e.Subject)
		return nil
	})
	err := events.EmitAll(context.Background(), s, []events.Event{{Subject: "1"}, {Subject: "2"}, {Subject: "3"}, {Subject: "4"}})
	var be *events.BatchError
	if !errors.As(err, &be) || be.Written != 2 || be.Total != 4 || strings.Join(got, " ") != "1 2" {
		t.Errorf("EmitAll = %v after recording %v; want a *BatchError with Written 2 of 4 after 1 2", err, got)
	}
	if err := events.EmitAll(context.Background(), s, nil); err != nil {
		t.Errorf("EmitAll of nothing = %v", err)
	}
}

// BestEffort logs each event of a batch its sink did not record.
func TestBestEffortBatchLogsWhatWasLost(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	s := sinkFunc(func(_ context.Context, e events.Event) error {
		if e.Subject != "1" {
			return errors.New("down")
		}
		return nil
	})
	err := events.BestEffort(s, log).(events.BatchSink).EmitBatch(context.Background(), []events.Event{{Subject: "1"}, {Subject: "2"}, {Subject: "3"}})
	if err != nil || strings.Count(buf.String(), "event not written") != 2 || strings.Contains(buf.String(), "subject=1 ") {
		t.Errorf("EmitBatch = %v, log %q; want nil and events 2 and 3 logged", err, buf.String())
	}
}
