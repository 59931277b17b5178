package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/smithy-go"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/teardown"
)

// strictSink fails when its context is done, as a sink writing on the
// caller's context would.
type strictSink struct{ events.Memory }

func (s *strictSink) Emit(ctx context.Context, e events.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Memory.Emit(ctx, e)
}

func TestExhaustedPayload(t *testing.T) {
	throttled := &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
	denied := &smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "You are not authorized."}
	deadlineCtx, cancel := context.WithDeadlineCause(context.Background(), time.Now(), errors.New("sweep pass over"))
	defer cancel()
	<-deadlineCtx.Done()
	cancelCtx, cancelCause := context.WithCancelCause(context.Background())
	cancelCause(errors.New("shutting down"))

	tests := []struct {
		name string
		re   teardown.RetryError
		want map[string]any
	}{
		{
			name: "attempts exhausted on an AWS error",
			re:   teardown.RetryError{ID: "i-1", Attempts: 5, Cause: teardown.ErrExhausted, Last: fmt.Errorf("operation error EC2: TerminateInstances: %w", throttled)},
			want: map[string]any{"instance_id": "i-1", "attempts": 5, "cause": "exhausted",
				"last_error": "operation error EC2: TerminateInstances: api error RequestLimitExceeded: Request limit exceeded.", "error_code": "RequestLimitExceeded"},
		},
		{
			name: "permanent",
			re:   teardown.RetryError{ID: "i-2", Attempts: 1, Cause: teardown.ErrPermanent, Last: teardown.Permanent(denied)},
			want: map[string]any{"instance_id": "i-2", "attempts": 1, "cause": "permanent",
				"last_error": "api error UnauthorizedOperation: You are not authorized.", "error_code": "UnauthorizedOperation"},
		},
		{
			name: "deadline, no API error",
			re:   teardown.RetryError{ID: "i-3", Attempts: 2, Cause: context.DeadlineExceeded, Last: errors.New("dial tcp: i/o timeout")},
			want: map[string]any{"instance_id": "i-3", "attempts": 2, "cause": "deadline", "last_error": "dial tcp: i/o timeout"},
		},
		{
			name: "deadline with a cause",
			re:   teardown.RetryError{ID: "i-4", Attempts: 2, Cause: fmt.Errorf("%w: %w", context.DeadlineExceeded, context.Cause(deadlineCtx)), Last: errors.New("x")},
			want: map[string]any{"instance_id": "i-4", "attempts": 2, "cause": "deadline", "last_error": "x"},
		},
		{
			name: "canceled before any call",
			re:   teardown.RetryError{ID: "i-5", Attempts: 0, Cause: context.Canceled},
			want: map[string]any{"instance_id": "i-5", "attempts": 0, "cause": "canceled"},
		},
		{
			name: "canceled with a cause",
			re:   teardown.RetryError{ID: "i-6", Attempts: 3, Cause: context.Cause(cancelCtx), Last: errors.New("x")},
			want: map[string]any{"instance_id": "i-6", "attempts": 3, "cause": "canceled", "last_error": "x"},
		},
		{
			name: "an empty error code is left out",
			re:   teardown.RetryError{ID: "i-7", Attempts: 3, Cause: teardown.ErrExhausted, Last: &smithy.GenericAPIError{Message: "no code"}},
			want: map[string]any{"instance_id": "i-7", "attempts": 3, "cause": "exhausted", "last_error": "api error : no code"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := events.NewMemory()
			events.Exhausted(m, events.TypeRetryExhausted)(context.Background(), &tt.re)
			got := m.Events()
			if len(got) != 1 {
				t.Fatalf("%d events; want 1", len(got))
			}
			if got[0].Type != events.TypeRetryExhausted || got[0].Subject != tt.re.ID {
				t.Errorf("event = %s about %q; want %s about %q", got[0].Type, got[0].Subject, events.TypeRetryExhausted, tt.re.ID)
			}
			if g, w := jsonOf(t, got[0].Payload), jsonOf(t, tt.want); g != w {
				t.Errorf("payload = %s\nwant      %s", g, w)
			}
		})
	}
}

func TestExhaustedTypeAndNil(t *testing.T) {
	m := events.NewMemory()
	events.Exhausted(m, "")(context.Background(), &teardown.RetryError{ID: "i-1", Cause: teardown.ErrExhausted})
	events.Exhausted(m, "host.gave_up")(context.Background(), &teardown.RetryError{ID: "i-2", Cause: teardown.ErrExhausted})
	events.Exhausted(m, "")(context.Background(), nil)
	got := m.Events()
	if len(got) != 2 || got[0].Type != events.TypeRetryExhausted || got[1].Type != "host.gave_up" {
		t.Errorf("events = %+v; want %s, then host.gave_up, and nothing for a nil RetryError", got, events.TypeRetryExhausted)
	}
}

func TestExhaustedDetachesTheContext(t *testing.T) {
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "trace-1"))
	cancel()
	var s strictSink
	var seen any
	events.Exhausted(events.Multi(&s, sinkFunc(func(ctx context.Context, _ events.Event) error {
		seen = ctx.Value(key{})
		return nil
	})), "")(ctx, &teardown.RetryError{ID: "i-1", Cause: context.Canceled})
	if len(s.Events()) != 1 {
		t.Errorf("a sink that honours cancellation got %d events from a cancelled context; want 1", len(s.Events()))
	}
	if seen != "trace-1" {
		t.Errorf("the sink saw context value %v; want trace-1 (values are kept)", seen)
	}
}

type sinkFunc func(context.Context, events.Event) error

func (f sinkFunc) Emit(ctx context.Context, e events.Event) error { return f(ctx, e) }

// With the real retry loop on a fake clock: the context's deadline falls
// in the middle of the backoff schedule, and the event reports the calls
// actually made, not the configured maximum.
func TestExhaustedWithStopWithRetryRecordsRealAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		throttled := &smithy.GenericAPIError{Code: "RequestLimitExceeded"}
		ec2 := teardown.StopperFunc(func(context.Context, string) error {
			calls.Add(1)
			return throttled
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m := events.NewMemory()
		err := teardown.StopWithRetry(ctx, ec2, "i-0abc",
			teardown.WithMaxAttempts(10), teardown.WithBackoff(3*time.Second, time.Minute), teardown.WithJitter(teardown.NoJitter),
			teardown.WithOnExhausted(events.Exhausted(m, events.TypeRetryExhausted)))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("StopWithRetry = %v; want a deadline", err)
		}
		// Calls at 0s, 3s and 9s; the next sleep (12s) would pass the deadline.
		got := m.Events()
		want := fmt.Sprintf(`{"attempts":%d,"cause":"deadline","error_code":"RequestLimitExceeded","instance_id":"i-0abc","last_error":"api error RequestLimitExceeded: "}`, calls.Load())
		if calls.Load() != 3 || len(got) != 1 || jsonOf(t, got[0].Payload) != want {
			t.Errorf("%d calls, events %+v; want 3 calls and one event with payload %s", calls.Load(), got, want)
		}
	})
}

// The incident this package exists for: the context expires while the
// stopper is retrying, and the row must still be written, with the truth.
func TestExhaustedRowWrittenAfterContextExpires(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d driver) {
		sink, _ := migrated(t, d)
		var calls atomic.Int32
		ec2 := teardown.StopperFunc(func(ctx context.Context, id string) error {
			if calls.Add(1) < 3 {
				return &smithy.GenericAPIError{Code: "InternalError", Message: "An internal error has occurred"}
			}
			<-ctx.Done() // the third call hangs until the request gives up
			return fmt.Errorf("ec2: TerminateInstances %s: %w", id, ctx.Err())
		})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := teardown.StopWithRetry(ctx, ec2, "i-0abc",
			teardown.WithMaxAttempts(10), teardown.WithBackoff(time.Millisecond, time.Millisecond),
			teardown.WithOnExhausted(events.Exhausted(sink, events.TypeRetryExhausted)))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("StopWithRetry = %v; want a deadline", err)
		}
		if ctx.Err() == nil {
			t.Fatal("the context is still live; the test needs it expired")
		}
		got := list(t, sink, events.Filter{Type: events.TypeRetryExhausted, Subject: "i-0abc"})
		if len(got) != 1 {
			t.Fatalf("%d rows after the context expired; want 1", len(got))
		}
		want := `{"attempts":3,"cause":"deadline","instance_id":"i-0abc","last_error":"ec2: TerminateInstances i-0abc: context deadline exceeded"}`
		if calls.Load() != 3 || jsonOf(t, got[0].Payload) != want {
			t.Errorf("%d calls, row payload %s; want 3 calls and %s", calls.Load(), jsonOf(t, got[0].Payload), want)
		}
	})
}

// A DELETE handler knows each instance's row: with WithResource, the
// ledger's subject is the row, and the payload names both.
func TestExhaustedRecordsTheRowGivenWithResource(t *testing.T) {
	failing := teardown.StopperFunc(func(context.Context, string) error { return errors.New("boom") })
	m := events.NewMemory()
	ctx := context.Background()
	ctx = events.WithResource(ctx, "i-a", "ws-a")
	ctx = events.WithResource(ctx, "i-b", "ws-b")
	ctx = events.WithResource(ctx, "i-a", "ws-a2") // the latest wins
	results := teardown.StopAll(ctx, failing, []string{"i-a", "i-b", "i-c"},
		teardown.WithMaxAttempts(1),
		teardown.WithOnExhausted(events.Exhausted(m, "")))
	if len(results) != 3 {
		t.Fatalf("StopAll results = %v", results)
	}
	got := map[string]string{}
	for _, e := range m.Events() {
		got[e.Payload["instance_id"].(string)] = fmt.Sprintf("%s %v", e.Subject, e.Payload["resource_id"])
	}
	want := map[string]string{"i-a": "ws-a2 ws-a2", "i-b": "ws-b ws-b", "i-c": "i-c <nil>"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("subject and resource_id by instance = %v; want %v", got, want)
	}
}
