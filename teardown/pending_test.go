package teardown

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// errDependents is a stopper's "accepted, not finished" answer, as awsec2
// gives while an instance's dependents wait for its termination.
var errDependents = fmt.Errorf("awsec2: terminate i-1: dependents not finished: %w", ErrPending)

// A pending stop is tried once: nothing finishes within a backoff. It is
// not given up either, so OnExhausted is not called, and the error keeps
// the stopper's answer.
func TestStopWithRetryPendingIsTriedOnceAndNotExhausted(t *testing.T) {
	s := failing(errDependents)
	exhausted := 0
	err := StopWithRetry(context.Background(), s, "i-1", noWait, WithMaxAttempts(5),
		WithOnExhausted(func(context.Context, *RetryError) { exhausted++ }))
	re := asRetryError(t, err)
	if s.count() != 1 || re.Attempts != 1 || re.Cause != ErrPending || re.Last != errDependents {
		t.Errorf("calls %d, RetryError %+v; want 1 call, Cause ErrPending, the stopper's error kept", s.count(), *re)
	}
	if exhausted != 0 || !errors.Is(err, ErrPending) || !IsPending(err) {
		t.Errorf("OnExhausted called %d times, errors.Is(err, ErrPending) %v, IsPending %v; want 0, true, true", exhausted, errors.Is(err, ErrPending), IsPending(err))
	}
}

// A permanent failure wins over pending: a dependent that can never be
// finished is given up on, and reported.
func TestStopWithRetryPermanentPendingIsGivenUp(t *testing.T) {
	s := failing(Permanent(errDependents))
	exhausted := 0
	err := StopWithRetry(context.Background(), s, "i-1", noWait,
		WithOnExhausted(func(context.Context, *RetryError) { exhausted++ }))
	if re := asRetryError(t, err); re.Cause != ErrPermanent || exhausted != 1 || IsPending(err) {
		t.Errorf("Cause %v, OnExhausted %d, IsPending %v; want ErrPermanent, 1, false", re.Cause, exhausted, IsPending(err))
	}
}

// StopAll re-sends only the retryable failures: a pending id leaves the
// batch after its first answer, without an OnExhausted call.
func TestStopAllPendingLeavesTheBatch(t *testing.T) {
	b := &batcher{answer: func(id string, call int) (error, bool) {
		switch {
		case id == "i-pending":
			return errDependents, false
		case id == "i-flaky" && call == 1:
			return errThrottled, false
		}
		return nil, false
	}}
	var exhausted []string
	got := StopAll(context.Background(), b, []string{"i-pending", "i-flaky", "i-ok"}, noWait,
		WithOnExhausted(func(_ context.Context, re *RetryError) { exhausted = append(exhausted, re.ID) }))
	if !errors.Is(got["i-pending"], ErrPending) || got["i-flaky"] != nil || got["i-ok"] != nil {
		t.Errorf("results %v, want i-pending pending, the others stopped", got)
	}
	if want := []int{3, 1}; !slices.Equal(b.sizes(), want) {
		t.Errorf("batch sizes %v, want %v: only the throttled id re-sent", b.sizes(), want)
	}
	if len(exhausted) != 0 {
		t.Errorf("OnExhausted for %v, want none", exhausted)
	}
}
