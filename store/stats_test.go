package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leakless/leakless/teardown"
)

// operator is what the operator's tools use of a store beyond Store.
type operator interface {
	Store
	Stats(ctx context.Context) (Stats, error)
	Forget(ctx context.Context, resourceID string) (bool, error)
}

var (
	_ operator = (*Postgres)(nil)
	_ operator = (*Memory)(nil)
)

// TestOperatorContract runs Stats and Forget against every implementation.
func TestOperatorContract(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			t.Run("StatsCountsPendingPermanentAndAcknowledged", func(t *testing.T) { testStatsCounts(t, f) })
			t.Run("StatsOldestPendingIsTheFirstRecord", func(t *testing.T) { testStatsOldest(t, f) })
			t.Run("ForgetHidesTheRowForGood", func(t *testing.T) { testForgetHides(t, f) })
			t.Run("ForgetOnlyPendingRows", func(t *testing.T) { testForgetOnlyPending(t, f) })
			t.Run("ForgetIsOfOneInstance", func(t *testing.T) { testForgetIsOfOneInstance(t, f) })
		})
	}
}

func openOperator(t *testing.T, f fixture) (operator, hostTable) {
	t.Helper()
	st, h := f.open(t, true, WithRedriveGrace(0))
	return st.(operator), h
}

func mustStats(t *testing.T, st operator) Stats {
	t.Helper()
	s, err := st.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

func testStatsCounts(t *testing.T, f fixture) {
	st, h := openOperator(t, f)
	ctx := context.Background()
	if s := mustStats(t, st); s != (Stats{}) {
		t.Fatalf("Stats of an empty table = %+v, want zero", s)
	}
	id := f.id
	h.put(t, Row{ID: id(1), Status: "removed", InstanceID: "i-1"}) // never attempted
	h.put(t, Row{ID: id(2), Status: "removed", InstanceID: "i-2"}) // failed, retryable
	h.put(t, Row{ID: id(3), Status: "removed", InstanceID: "i-3"}) // failed, permanent
	h.put(t, Row{ID: id(4), Status: "removed", InstanceID: "i-4"}) // acknowledged
	h.put(t, Row{ID: id(5), Status: "active", InstanceID: "i-5"})  // live: not pending
	h.put(t, Row{ID: id(6), Status: "removed"})                    // holds nothing
	mustFailed(t, st, Pending{ResourceID: id(2), InstanceID: "i-2"}, errors.New("RequestLimitExceeded"), dueLater)
	// The sweeper's failures come wrapped in a RetryError.
	perm := &teardown.RetryError{ID: "i-3", Attempts: 1, Cause: teardown.ErrPermanent,
		Last: teardown.Permanent(errors.New("OperationNotPermitted"))}
	mustFailed(t, st, Pending{ResourceID: id(3), InstanceID: "i-3"}, perm, dueLater)
	mustFailed(t, st, Pending{ResourceID: id(4), InstanceID: "i-4"}, teardown.Permanent(errors.New("UnauthorizedOperation")), dueLater)
	if ok, err := st.Forget(ctx, id(4)); err != nil || !ok {
		t.Fatalf("Forget(%s) = %v, %v; want true", id(4), ok, err)
	}
	s := mustStats(t, st)
	if s.Pending != 3 || s.Permanent != 1 || s.Acknowledged != 1 {
		t.Fatalf("Stats = %+v, want Pending 3, Permanent 1, Acknowledged 1", s)
	}
	if s.OldestPending <= 0 || s.OldestPending > time.Minute {
		t.Fatalf("OldestPending = %v, want the age of the failures recorded just now", s.OldestPending)
	}

	// A later retryable failure is the latest: no longer permanent.
	mustFailed(t, st, Pending{ResourceID: id(3), InstanceID: "i-3"}, errors.New("InternalError"), dueLater)
	if s := mustStats(t, st); s.Permanent != 0 || s.Pending != 3 {
		t.Fatalf("Stats after a retryable failure = %+v, want Permanent 0 of Pending 3", s)
	}
	// A reaped row is no longer pending, nor is its record counted.
	mustReaped(t, st, Pending{ResourceID: id(2), InstanceID: "i-2"})
	if s := mustStats(t, st); s.Pending != 2 {
		t.Fatalf("Stats after a reap = %+v, want Pending 2", s)
	}
}

func testStatsOldest(t *testing.T, f fixture) {
	st, h := openOperator(t, f)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	if s := mustStats(t, st); s.Pending != 1 || s.OldestPending != 0 {
		t.Fatalf("Stats with a row never attempted = %+v, want Pending 1 and no age: it has no record", s)
	}
	p := Pending{ResourceID: f.id(1), InstanceID: "i-1"}
	mustFailed(t, st, p, errors.New("boom"), dueNow)
	first := mustStats(t, st).OldestPending
	time.Sleep(20 * time.Millisecond)
	mustFailed(t, st, p, errors.New("boom"), dueNow)
	later := mustStats(t, st).OldestPending
	if later < first+20*time.Millisecond {
		t.Fatalf("OldestPending %v after a second failure 20ms after the first (%v then): want it dated from the first", later, first)
	}
	// A new instance on the row starts a new record.
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1b"})
	mustFailed(t, st, Pending{ResourceID: f.id(1), InstanceID: "i-1b"}, errors.New("boom"), dueNow)
	if again := mustStats(t, st).OldestPending; again >= later {
		t.Fatalf("OldestPending %v for a new instance, want less than the old instance's %v", again, later)
	}
}

func testForgetHides(t *testing.T, f fixture) {
	st, h := openOperator(t, f)
	ctx := context.Background()
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	h.put(t, Row{ID: f.id(2), Status: "removed", InstanceID: "i-2"})
	p := Pending{ResourceID: f.id(1), InstanceID: "i-1"}
	mustFailed(t, st, p, teardown.Permanent(errors.New("OperationNotPermitted")), dueNow)
	for range 2 { // again: still true
		if ok, err := st.Forget(ctx, f.id(1)); err != nil || !ok {
			t.Fatalf("Forget = %v, %v; want true", ok, err)
		}
	}
	// Row 2 has no record yet: Forget writes one.
	if ok, err := st.Forget(ctx, f.id(2)); err != nil || !ok {
		t.Fatalf("Forget of a row never attempted = %v, %v; want true", ok, err)
	}
	wantIDs(t, "Pending after Forget", mustPending(t, st, 10))
	// A stop that was in flight when the operator acknowledged the row
	// fails afterwards: the row stays acknowledged.
	mustFailed(t, st, p, errors.New("InternalError"), dueNow)
	wantIDs(t, "Pending after a failure recorded past Forget", mustPending(t, st, 10))
	if s := mustStats(t, st); s.Pending != 0 || s.Acknowledged != 2 {
		t.Fatalf("Stats = %+v, want Acknowledged 2 and nothing pending", s)
	}
	// The host gives the row a new instance: that one is not acknowledged.
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1b"})
	wantIDs(t, "Pending with a new instance", mustPending(t, st, 10), f.id(1))
}

func testForgetOnlyPending(t *testing.T, f fixture) {
	st, h := openOperator(t, f)
	ctx := context.Background()
	h.put(t, Row{ID: f.id(1), Status: "active", InstanceID: "i-1"})
	h.put(t, Row{ID: f.id(2), Status: "removed"})
	for _, id := range []string{f.id(1), f.id(2), f.id(9)} {
		if ok, err := st.Forget(ctx, id); err != nil || ok {
			t.Errorf("Forget(%s) = %v, %v; want false: not pending", id, ok, err)
		}
	}
	if ok, err := st.Forget(ctx, "bad\x00id"); err != nil || ok {
		t.Errorf("Forget of an id no row can have = %v, %v; want false", ok, err)
	}
	if s := mustStats(t, st); s != (Stats{}) {
		t.Fatalf("Stats = %+v, want zero: nothing pending", s)
	}
	// Rows that are not pending are neither hidden later: removing row 1
	// makes it due.
	mustRemoveTree(t, st, f.id(1))
	wantIDs(t, "Pending after removal", mustPending(t, st, 10), f.id(1))
}

// An acknowledgement is of the instance the row held: a new instance on
// the row, recorded by a later RemoveTree, is pending, backs off when it
// fails and is not counted as acknowledged.
func testForgetIsOfOneInstance(t *testing.T, f fixture) {
	st, h := openOperator(t, f)
	ctx := context.Background()
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-a"})
	mustFailed(t, st, Pending{ResourceID: f.id(1), InstanceID: "i-a"}, teardown.Permanent(errors.New("OperationNotPermitted")), dueNow)
	if ok, err := st.Forget(ctx, f.id(1)); err != nil || !ok {
		t.Fatalf("Forget = %v, %v", ok, err)
	}
	h.put(t, Row{ID: f.id(1), Status: "active", InstanceID: "i-b"})
	mustRemoveTree(t, st, f.id(1))
	if s := mustStats(t, st); s.Pending != 1 || s.Acknowledged != 0 || s.Permanent != 0 {
		t.Fatalf("Stats after a new instance = %+v, want it pending, neither acknowledged nor permanent", s)
	}
	mustFailed(t, st, Pending{ResourceID: f.id(1), InstanceID: "i-b"}, errors.New("InternalError"), dueLater)
	wantIDs(t, "Pending after the new instance failed", mustPending(t, st, 10))
}
