package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/leakless/leakless/teardown"
)

// TestContract runs one suite against every implementation — Memory, and
// Postgres through pgx and database/sql with text, uuid and bigint ids — so
// they cannot drift apart.
func TestContract(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range contract {
				t.Run(c.name, func(t *testing.T) { c.run(t, f) })
			}
		})
	}
}

var contract = []struct {
	name string
	run  func(t *testing.T, f fixture)
}{
	{"PendingListsOnlyRemovedRowsHoldingAnInstance", testPendingListsOnlyRemovedHolders},
	{"PendingHonoursLimit", testPendingHonoursLimit},
	{"PendingOldestAttemptFirst", testPendingOldestAttemptFirst},
	{"ReapedClearsTheRowOnce", testReapedClearsTheRowOnce},
	{"ReapedLosesToAHostUpdate", testReapedLosesToAHostUpdate},
	{"ReapedConcurrentExactlyOneWins", testReapedConcurrentExactlyOneWins},
	{"ReapedForgetsAttempts", testReapedForgetsAttempts},
	{"FailedHidesUntilDue", testFailedHidesUntilDue},
	{"FailedWithZeroDelayLeavesRowDue", testFailedWithZeroDelayLeavesRowDue},
	{"FailedCountsConcurrentFailures", testFailedCountsConcurrentFailures},
	{"FailedRestartsCountForANewInstance", testFailedRestartsCountForANewInstance},
	{"FailedTruncatesLastError", testFailedTruncatesLastError},
	{"FailedOnMissingRowRecordsNothing", testFailedOnMissingRowRecordsNothing},
	{"FailedKeepsTheFirstNotFound", testFailedKeepsTheFirstNotFound},
	{"FailedNotFoundRestartsForANewInstance", testFailedNotFoundRestartsForANewInstance},
	{"RemoveTreeRedrivesAlreadyRemovedRows", testRemoveTreeRedrivesAlreadyRemovedRows},
	{"RemoveTreeEndsOnParentCycle", testRemoveTreeEndsOnParentCycle},
	{"RemoveTreeUnknownRootIsNotFound", testRemoveTreeUnknownRoot},
	{"RemoveTreeWithoutHoldersIsEmpty", testRemoveTreeWithoutHolders},
	{"RemoveTreeWithoutParentColumnIsTheRoot", testRemoveTreeWithoutParentColumn},
	{"RemoveTreeReportsAttempts", testRemoveTreeReportsAttempts},
	{"RemoveTreeDefersTheRedriveOfItsHolders", testRemoveTreeDefersTheRedrive},
	{"RemoveTreeWithoutGraceLeavesHoldersDue", testRemoveTreeWithoutGrace},
	{"GraceOverSortsBeforeAttemptedRows", testGraceOverSortsFirst},
	{"StoppingDefersTheRedrive", testStoppingDefersTheRedrive},
	{"Known", testKnown},
	{"CanceledContext", testCanceledContext},
}

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

func testPendingListsOnlyRemovedHolders(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	h.put(t, Row{ID: f.id(2), Status: "removed"})
	h.put(t, Row{ID: f.id(3), Status: "active", InstanceID: "i-3"})
	h.put(t, Row{ID: f.id(4), Status: "removed", InstanceID: "i-4"})
	h.put(t, Row{ID: f.id(5), Status: "creating"})

	got := mustPending(t, st, 10)
	want := []Pending{{ResourceID: f.id(1), InstanceID: "i-1"}, {ResourceID: f.id(4), InstanceID: "i-4"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending = %+v, want %+v", got, want)
	}
}

func testPendingHonoursLimit(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	for i := 1; i <= 3; i++ {
		h.put(t, Row{ID: f.id(i), Status: "removed", InstanceID: fmt.Sprint("i-", i)})
	}
	wantIDs(t, "Pending(2)", mustPending(t, st, 2), f.id(1), f.id(2))
	wantIDs(t, "Pending(0)", mustPending(t, st, 0))
	wantIDs(t, "Pending(-1)", mustPending(t, st, -1))
}

// A row that keeps failing goes to the back, so it never starves the rest.
func testPendingOldestAttemptFirst(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	for i := 1; i <= 3; i++ {
		h.put(t, Row{ID: f.id(i), Status: "removed", InstanceID: fmt.Sprint("i-", i)})
	}
	ps := mustPending(t, st, 3)
	mustFailed(t, st, ps[0], errors.New("throttled"), dueNow) // due again at once
	wantIDs(t, "after row 1 failed", mustPending(t, st, 3), f.id(2), f.id(3), f.id(1))
	wantIDs(t, "first of them", mustPending(t, st, 1), f.id(2))

	mustFailed(t, st, ps[1], errors.New("throttled"), dueNow)
	wantIDs(t, "after row 2 failed", mustPending(t, st, 3), f.id(3), f.id(1), f.id(2))
}

func testReapedClearsTheRowOnce(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]

	if !mustReaped(t, st, p) {
		t.Fatal("Reaped of an unchanged row = false, want true")
	}
	if r, _ := h.get(t, f.id(1)); r.InstanceID != "" || r.Status != "removed" {
		t.Fatalf("row after Reaped = %+v, want status removed and no instance", r)
	}
	wantIDs(t, "Pending after Reaped", mustPending(t, st, 10))
	if mustReaped(t, st, p) {
		t.Fatal("second Reaped = true, want false")
	}
}

func testReapedLosesToAHostUpdate(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-old"})
	h.put(t, Row{ID: f.id(2), Status: "removed", InstanceID: "i-2"})
	h.put(t, Row{ID: f.id(3), Status: "removed", InstanceID: "i-3"})
	ps := mustPending(t, st, 10)

	// Between Pending and Reaped the host gives row 1 a new instance,
	// restores row 2, and deletes row 3 outright.
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-new"})
	h.put(t, Row{ID: f.id(2), Status: "active", InstanceID: "i-2"})
	h.del(t, f.id(3))

	for _, p := range ps {
		if mustReaped(t, st, p) {
			t.Errorf("Reaped(%+v) after the host changed the row = true, want false", p)
		}
	}
	if r, _ := h.get(t, f.id(1)); r.InstanceID != "i-new" {
		t.Errorf("row 1 holds %q, want the host's new i-new", r.InstanceID)
	}
	if r, _ := h.get(t, f.id(2)); r.InstanceID != "i-2" || r.Status != "active" {
		t.Errorf("row 2 = %+v, want active holding i-2", r)
	}
	if _, ok := h.get(t, f.id(3)); ok {
		t.Error("row 3 came back")
	}
}

func testReapedConcurrentExactlyOneWins(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]

	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
		errs []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			ok, err := st.Reaped(context.Background(), p)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				wins++
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("Reaped errors: %v", errs)
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent Reaped calls returned true, want exactly 1", wins, n)
	}
}

func testReapedForgetsAttempts(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	mustFailed(t, st, p, errors.New("first"), dueNow)
	mustFailed(t, st, p, errors.New("second"), dueNow)
	if !mustReaped(t, st, p) {
		t.Fatal("Reaped = false, want true")
	}

	// The same instance id held again (the host re-recorded it) starts
	// from a clean slate.
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	got := mustPending(t, st, 1)
	want := []Pending{{ResourceID: f.id(1), InstanceID: "i-1"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending after Reaped = %+v, want %+v (no attempts)", got, want)
	}
}

func testFailedHidesUntilDue(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	h.put(t, Row{ID: f.id(2), Status: "removed", InstanceID: "i-2"})
	p := mustPending(t, st, 10)[0]

	mustFailed(t, st, p, errors.New("RequestLimitExceeded"), dueLater)
	wantIDs(t, "Pending while row 1 waits", mustPending(t, st, 10), f.id(2))

	// A zero delay is the row's backoff running out.
	mustFailed(t, st, p, errors.New("InternalError"), dueNow)
	got := mustPending(t, st, 10)
	want := []Pending{
		{ResourceID: f.id(2), InstanceID: "i-2"},
		{ResourceID: f.id(1), InstanceID: "i-1", Attempts: 2, LastError: "InternalError"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending once due = %+v, want %+v", got, want)
	}
}

func testFailedWithZeroDelayLeavesRowDue(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	mustFailed(t, st, p, nil, 0)
	got := mustPending(t, st, 1)
	want := []Pending{{ResourceID: f.id(1), InstanceID: "i-1", Attempts: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending = %+v, want %+v", got, want)
	}
}

func testFailedCountsConcurrentFailures(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = st.Failed(context.Background(), p, errors.New("boom"), dueNow) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := mustPending(t, st, 1)[0].Attempts; got != n {
		t.Fatalf("Attempts after %d concurrent failures = %d, want %d", n, got, n)
	}
}

func testFailedRestartsCountForANewInstance(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-old"})
	p := mustPending(t, st, 1)[0]
	mustFailed(t, st, p, errors.New("a"), dueNow)
	mustFailed(t, st, p, errors.New("b"), dueLater)

	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-new"})
	got := mustPending(t, st, 1)
	want := []Pending{{ResourceID: f.id(1), InstanceID: "i-new"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending for the new instance = %+v, want %+v (due, no attempts)", got, want)
	}
	mustFailed(t, st, got[0], errors.New("c"), dueNow)
	if a := mustPending(t, st, 1)[0].Attempts; a != 1 {
		t.Fatalf("Attempts for the new instance = %d, want 1", a)
	}
}

func testFailedTruncatesLastError(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	long := "x" + strings.Repeat("é", 2000) // 4001 bytes; the cut falls inside a rune
	mustFailed(t, st, p, errors.New(long), dueNow)

	got := mustPending(t, st, 1)[0].LastError
	if len(got) != maxLastError-1 || !utf8.ValidString(got) || !strings.HasPrefix(long, got) {
		t.Fatalf("LastError is %d bytes (valid UTF-8: %v, a prefix: %v), want the first %d bytes of the error",
			len(got), utf8.ValidString(got), strings.HasPrefix(long, got), maxLastError-1)
	}
}

func testFailedOnMissingRowRecordsNothing(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	p := Pending{ResourceID: f.id(1), InstanceID: "i-1"}
	mustFailed(t, st, p, errors.New("boom"), dueLater)
	// A row created later with that id and instance is due at once.
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	got := mustPending(t, st, 1)
	if !slices.Equal(got, []Pending{p}) {
		t.Fatalf("Pending = %+v, want %+v", got, []Pending{p})
	}
}

// notFoundFor returns the NotFoundFor that Pending reports for the only
// row due.
func notFoundFor(t *testing.T, st Store) time.Duration {
	t.Helper()
	ps := mustPending(t, st, 10)
	if len(ps) != 1 {
		t.Fatalf("Pending = %+v, want one row", ps)
	}
	return ps[0].NotFoundFor
}

// NotFoundFor counts from the first of an unbroken run of NotFound
// answers, by the store's clock; any other error ends the run.
func testFailedKeepsTheFirstNotFound(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := Pending{ResourceID: f.id(1), InstanceID: "i-1"}
	notFound := fmt.Errorf("describe: %w", teardown.ErrNotFound)
	if got := notFoundFor(t, st); got != 0 {
		t.Fatalf("NotFoundFor before any attempt = %v, want 0", got)
	}
	mustFailed(t, st, p, notFound, dueNow)
	if got := notFoundFor(t, st); got <= 0 {
		t.Fatalf("NotFoundFor after a NotFound = %v, want more than 0", got)
	}
	const gap = 30 * time.Millisecond
	time.Sleep(gap)
	mustFailed(t, st, p, notFound, dueNow)
	if got := notFoundFor(t, st); got < gap {
		t.Fatalf("NotFoundFor after two NotFounds %v apart = %v, want at least %v: the first is kept", gap, got, gap)
	}

	mustFailed(t, st, p, errors.New("InternalError"), dueNow)
	if got := notFoundFor(t, st); got != 0 {
		t.Fatalf("NotFoundFor after another error = %v, want 0", got)
	}
	start := time.Now()
	mustFailed(t, st, p, notFound, dueNow)
	got := notFoundFor(t, st)
	if elapsed := time.Since(start); got <= 0 || got > elapsed+time.Millisecond {
		t.Fatalf("NotFoundFor after the run restarted = %v, want more than 0 and at most %v", got, elapsed)
	}
}

func testFailedNotFoundRestartsForANewInstance(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-old"})
	mustFailed(t, st, Pending{ResourceID: f.id(1), InstanceID: "i-old"}, teardown.ErrNotFound, dueNow)
	time.Sleep(30 * time.Millisecond)

	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-new"})
	if got := notFoundFor(t, st); got != 0 {
		t.Fatalf("NotFoundFor of the new instance = %v, want 0: the old one's NotFound does not count", got)
	}
	start := time.Now()
	mustFailed(t, st, Pending{ResourceID: f.id(1), InstanceID: "i-new"}, teardown.ErrNotFound, dueNow)
	got := notFoundFor(t, st)
	if elapsed := time.Since(start); got <= 0 || got > elapsed+time.Millisecond {
		t.Fatalf("NotFoundFor of the new instance = %v, want more than 0 and at most %v", got, elapsed)
	}
}

// The bug this closes: an earlier delete removed the middle level, its
// stops failed, and the retried delete's cascade skipped removed rows.
func testRemoveTreeRedrivesAlreadyRemovedRows(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	root, midA, midB := f.id(1), f.id(2), f.id(3)
	leafA, leafB, leafC, other := f.id(4), f.id(5), f.id(6), f.id(7)
	h.put(t, Row{ID: root, Status: "active", InstanceID: "i-root"})
	h.put(t, Row{ID: midA, Parent: root, Status: "active", InstanceID: "i-midA"})
	h.put(t, Row{ID: midB, Parent: root, Status: "active"})
	h.put(t, Row{ID: leafA, Parent: midA, Status: "active", InstanceID: "i-leafA"})
	h.put(t, Row{ID: leafB, Parent: midB, Status: "creating", InstanceID: "i-leafB"})
	h.put(t, Row{ID: leafC, Parent: midB, Status: "active"})
	h.put(t, Row{ID: other, Status: "active", InstanceID: "i-other"})

	wantIDs(t, "earlier delete of the middle level", mustRemoveTree(t, st, midA), midA, leafA)

	want := []Pending{
		{ResourceID: root, InstanceID: "i-root"},
		{ResourceID: midA, InstanceID: "i-midA"},
		{ResourceID: leafA, InstanceID: "i-leafA"},
		{ResourceID: leafB, InstanceID: "i-leafB"},
	}
	for _, call := range []string{"first", "second"} {
		got := mustRemoveTree(t, st, root)
		if !slices.Equal(got, want) {
			t.Fatalf("%s RemoveTree(root) = %+v, want every holder %+v", call, got, want)
		}
	}
	for _, id := range []string{root, midA, midB, leafA, leafB, leafC} {
		if r, _ := h.get(t, id); r.Status != "removed" {
			t.Errorf("row %s status %q, want removed", id, r.Status)
		}
	}
	if r, _ := h.get(t, other); r.Status != "active" {
		t.Errorf("unrelated row status %q, want active", r.Status)
	}
}

func testRemoveTreeEndsOnParentCycle(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	a, b, c := f.id(1), f.id(2), f.id(3)
	h.put(t, Row{ID: a, Parent: c, Status: "active", InstanceID: "i-a"})
	h.put(t, Row{ID: b, Parent: a, Status: "active", InstanceID: "i-b"})
	h.put(t, Row{ID: c, Parent: b, Status: "active", InstanceID: "i-c"})
	h.put(t, Row{ID: f.id(4), Parent: f.id(4), Status: "active", InstanceID: "i-self"})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := st.RemoveTree(ctx, b)
	if err != nil {
		t.Fatalf("RemoveTree on a cycle: %v", err)
	}
	wantIDs(t, "RemoveTree on a cycle", got, a, b, c)
	got, err = st.RemoveTree(ctx, f.id(4))
	if err != nil {
		t.Fatalf("RemoveTree on a self-parented row: %v", err)
	}
	wantIDs(t, "RemoveTree on a self-parented row", got, f.id(4))
}

func testRemoveTreeUnknownRoot(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "active", InstanceID: "i-1"})
	got, err := st.RemoveTree(context.Background(), f.id(2))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveTree(unknown) = %v, %v; want ErrNotFound", got, err)
	}
	if r, _ := h.get(t, f.id(1)); r.Status != "active" {
		t.Fatalf("other row status %q, want active", r.Status)
	}
}

func testRemoveTreeWithoutHolders(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "creating"})
	h.put(t, Row{ID: f.id(2), Parent: f.id(1), Status: "active"})
	got, err := st.RemoveTree(context.Background(), f.id(1))
	if err != nil || len(got) != 0 {
		t.Fatalf("RemoveTree = %+v, %v; want no holders and no error", got, err)
	}
	for _, id := range []string{f.id(1), f.id(2)} {
		if r, _ := h.get(t, id); r.Status != "removed" {
			t.Errorf("row %s status %q, want removed", id, r.Status)
		}
	}
}

func testRemoveTreeWithoutParentColumn(t *testing.T, f fixture) {
	st, h := f.open(t, false)
	h.put(t, Row{ID: f.id(1), Status: "active", InstanceID: "i-1"})
	h.put(t, Row{ID: f.id(2), Parent: f.id(1), Status: "active", InstanceID: "i-2"})
	wantIDs(t, "RemoveTree", mustRemoveTree(t, st, f.id(1)), f.id(1))
	if r, _ := h.get(t, f.id(2)); r.Status != "active" {
		t.Fatalf("child status %q, want active: the Table names no parent column", r.Status)
	}
}

func testRemoveTreeReportsAttempts(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	mustFailed(t, st, p, fmt.Errorf("boom: %w", teardown.ErrNotFound), dueLater)
	got := mustRemoveTree(t, st, f.id(1))
	if len(got) != 1 || got[0].NotFoundFor <= 0 {
		t.Fatalf("RemoveTree = %+v, want one row with a NotFoundFor", got)
	}
	got[0].NotFoundFor = 0
	want := []Pending{{ResourceID: f.id(1), InstanceID: "i-1", Attempts: 1, LastError: "boom: " + teardown.ErrNotFound.Error()}}
	if !slices.Equal(got, want) {
		t.Fatalf("RemoveTree = %+v, want %+v", got, want)
	}
}

// stopper is what Postgres and Memory offer beyond Store for a host that
// removes rows with its own UPDATE.
type stopper interface {
	Stopping(ctx context.Context, ps ...Pending) error
}

// The request that called RemoveTree is stopping the holders itself; the
// sweeper must not stop them again at once. Rows removed by anything else
// stay due, and the holders' attempt state is kept.
func testRemoveTreeDefersTheRedrive(t *testing.T, f fixture) {
	for _, opts := range [][]Option{nil, {WithRedriveGrace(time.Hour)}} {
		st, h := f.open(t, true, opts...)
		root, child, other := f.id(1), f.id(2), f.id(3)
		h.put(t, Row{ID: root, Status: "removed", InstanceID: "i-root"})
		h.put(t, Row{ID: child, Parent: root, Status: "active", InstanceID: "i-child"})
		h.put(t, Row{ID: other, Status: "removed", InstanceID: "i-other"}) // removed by the host's own UPDATE
		mustFailed(t, st, Pending{ResourceID: root, InstanceID: "i-root"}, errors.New("throttled"), dueNow)

		want := []Pending{
			{ResourceID: root, InstanceID: "i-root", Attempts: 1, LastError: "throttled"},
			{ResourceID: child, InstanceID: "i-child"},
		}
		if got := mustRemoveTree(t, st, root); !slices.Equal(got, want) {
			t.Fatalf("RemoveTree = %+v, want %+v", got, want)
		}
		wantIDs(t, fmt.Sprintf("Pending during the grace (options %d)", len(opts)), mustPending(t, st, 10), other)

		// A retried delete still returns them, attempt state unchanged.
		if got := mustRemoveTree(t, st, root); !slices.Equal(got, want) {
			t.Fatalf("retried RemoveTree = %+v, want %+v", got, want)
		}
		// A failure recorded meanwhile decides the row's due time again.
		mustFailed(t, st, want[0], errors.New("throttled"), dueNow)
		wantIDs(t, "Pending after a failure", mustPending(t, st, 10), other, root)
	}
}

func testRemoveTreeWithoutGrace(t *testing.T, f fixture) {
	st, h := f.open(t, true, WithRedriveGrace(0))
	h.put(t, Row{ID: f.id(1), Status: "active", InstanceID: "i-1"})
	h.put(t, Row{ID: f.id(2), Parent: f.id(1), Status: "active", InstanceID: "i-2"})
	mustRemoveTree(t, st, f.id(1))
	wantIDs(t, "Pending with no grace", mustPending(t, st, 10), f.id(1), f.id(2))
}

// Once its grace is over a row that never failed comes before rows that
// did, as a never-attempted row does.
func testGraceOverSortsFirst(t *testing.T, f fixture) {
	const grace = time.Millisecond
	st, h := f.open(t, true, WithRedriveGrace(grace))
	// A grace's record and no record at all tie, broken by id.
	deferred, fresh, failed := f.id(1), f.id(2), f.id(3)
	h.put(t, Row{ID: failed, Status: "removed", InstanceID: "i-1"})
	h.put(t, Row{ID: fresh, Status: "removed", InstanceID: "i-2"})
	h.put(t, Row{ID: deferred, Status: "active", InstanceID: "i-3"})
	mustFailed(t, st, Pending{ResourceID: failed, InstanceID: "i-1"}, errors.New("boom"), dueNow)
	mustRemoveTree(t, st, deferred)
	time.Sleep(20 * grace)
	wantIDs(t, "Pending once the grace is over", mustPending(t, st, 10), deferred, fresh, failed)
}

func testStoppingDefersTheRedrive(t *testing.T, f fixture) {
	st, h := f.open(t, true, WithRedriveGrace(time.Hour))
	s, ok := st.(stopper)
	if !ok {
		t.Fatalf("%T has no Stopping method", st)
	}
	stopping, replaced, untold := f.id(1), f.id(2), f.id(3)
	h.put(t, Row{ID: stopping, Status: "removed", InstanceID: "i-1"})
	h.put(t, Row{ID: replaced, Status: "removed", InstanceID: "i-new"})
	h.put(t, Row{ID: untold, Status: "removed", InstanceID: "i-3"})
	mustFailed(t, st, Pending{ResourceID: stopping, InstanceID: "i-1"}, errors.New("boom"), dueNow)

	err := s.Stopping(context.Background(),
		Pending{ResourceID: stopping, InstanceID: "i-1"},
		Pending{ResourceID: replaced, InstanceID: "i-old"}, // the row holds another instance now
		Pending{ResourceID: f.id(4), InstanceID: "i-4"},    // no such row
	)
	if err != nil {
		t.Fatalf("Stopping: %v", err)
	}
	wantIDs(t, "Pending after Stopping", mustPending(t, st, 10), replaced, untold)
	if err := s.Stopping(context.Background()); err != nil {
		t.Fatalf("Stopping(): %v", err)
	}

	// Its attempt state is kept for when the grace is over.
	got := mustRemoveTree(t, st, stopping)
	want := []Pending{{ResourceID: stopping, InstanceID: "i-1", Attempts: 1, LastError: "boom"}}
	if !slices.Equal(got, want) {
		t.Fatalf("RemoveTree after Stopping = %+v, want %+v", got, want)
	}
}

func testKnown(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	removedHolding, removedCleared, liveHolding, liveNone, creatingNone, noRow :=
		f.id(1), f.id(2), f.id(3), f.id(4), f.id(5), f.id(6)
	h.put(t, Row{ID: removedHolding, Status: "removed", InstanceID: "i-removed"})
	h.put(t, Row{ID: removedCleared, Status: "removed"})
	h.put(t, Row{ID: liveHolding, Status: "active", InstanceID: "i-live"})
	h.put(t, Row{ID: liveNone, Status: "active"})
	h.put(t, Row{ID: creatingNone, Status: "creating"})

	resources := []string{removedHolding, removedCleared, liveHolding, liveNone, creatingNone, noRow,
		strings.ToUpper(liveNone), liveNone, strings.ToUpper(removedCleared), "not-an-id", "bad\x00id", "bad\xffid", ""}
	instances := []string{"i-removed", "i-cleared", "i-live", "i-replaced", "i-none", "i-removed", "bad\xff", ""}
	before := time.Now()
	k, err := st.Known(context.Background(), resources, instances)
	if err != nil {
		t.Fatalf("Known: %v", err)
	}
	// The store's clock, not this process's, but both are this machine's.
	if k.Now.Before(before.Add(-time.Second)) || k.Now.After(time.Now().Add(time.Second)) {
		t.Errorf("Now = %v, want the time of the read, about %v", k.Now, before)
	}
	wantProvisioning := map[string]bool{liveNone: true, strings.ToUpper(liveNone): true, creatingNone: true}
	wantHeld := map[string]bool{"i-removed": true, "i-live": true}
	if !mapsEqual(k.Provisioning, wantProvisioning) {
		t.Errorf("Provisioning = %v, want %v", k.Provisioning, wantProvisioning)
	}
	if !mapsEqual(k.Held, wantHeld) {
		t.Errorf("Held = %v, want %v", k.Held, wantHeld)
	}
	wantRemoved := map[string]bool{removedHolding: true, removedCleared: true, strings.ToUpper(removedCleared): true}
	if !mapsEqual(k.Removed, wantRemoved) {
		t.Errorf("Removed = %v, want %v", k.Removed, wantRemoved)
	}

	k, err = st.Known(context.Background(), nil, nil)
	if err != nil || k.Held == nil || k.Provisioning == nil || k.Removed == nil ||
		len(k.Held)+len(k.Provisioning)+len(k.Removed) != 0 || k.Now.IsZero() {
		t.Fatalf("Known(nil, nil) = %+v, %v; want empty non-nil maps and the time of the read", k, err)
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

func testCanceledContext(t *testing.T, f fixture) {
	st, h := f.open(t, true)
	h.put(t, Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := Pending{ResourceID: f.id(1), InstanceID: "i-1"}
	_, errPending := st.Pending(ctx, 1)
	_, errReaped := st.Reaped(ctx, p)
	errFailed := st.Failed(ctx, p, errors.New("boom"), dueNow)
	_, errTree := st.RemoveTree(ctx, f.id(1))
	_, errKnown := st.Known(ctx, []string{f.id(1)}, []string{"i-1"})
	errStopping := st.(stopper).Stopping(ctx, p)
	for name, err := range map[string]error{
		"Pending": errPending, "Reaped": errReaped, "Failed": errFailed, "RemoveTree": errTree, "Known": errKnown,
		"Stopping": errStopping,
	} {
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("%s on a canceled context: %v, want a store: error wrapping context.Canceled", name, err)
		}
	}
	if r, _ := h.get(t, f.id(1)); r.InstanceID != "i-1" {
		t.Fatalf("row changed by canceled calls: %+v", r)
	}
}
