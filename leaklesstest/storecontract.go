package leaklesstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// Host is the host's own access to the table a store under
// [StoreContract] reads: the suite edits rows through it as the host's
// code would. An empty Parent or InstanceID is no parent, no instance
// (NULL, or whatever the host's schema uses).
type Host interface {
	Put(t *testing.T, r store.Row)                 // insert, or replace the row with r.ID
	Get(t *testing.T, id string) (store.Row, bool) // the row, and whether it exists
	Delete(t *testing.T, id string)                // delete the row outright
}

// StoreConfig is what a store under [StoreContract] must be built for.
type StoreConfig struct {
	// Table is the host table the suite edits: workspaces(id, parent_id,
	// status, instance_id) with status value "removed"; Parent is empty
	// for the cases about a table without cascades.
	Table store.Table
	// RedriveGrace is how long RemoveTree (and Stopping) keep their rows
	// out of Pending. It is store.DefaultRedriveGrace unless a case is
	// about another grace; 0 means none.
	RedriveGrace time.Duration
}

// OpenStore returns an empty table and a Store over it, built as cfg says.
// It is called once per case; what it opens is the test's to clean up.
type OpenStore func(t *testing.T, cfg StoreConfig) (store.Store, Host)

// ContractOption configures [StoreContract].
type ContractOption func(*contract)

// WithIDs sets the resource id of the i-th row, in the id column's type
// (a uuid, a bigint's text). Ids must sort the same as text and in their
// own type. The default is "ws-01", "ws-02", ...
func WithIDs(id func(i int) string) ContractOption {
	return func(c *contract) { c.id = id }
}

// WithLastErrorLimit says the store keeps at most n bytes of a failure's
// text in Pending.LastError, cut on a rune boundary. The default, 0, is no
// limit: LastError is the whole text.
func WithLastErrorLimit(n int) ContractOption {
	return func(c *contract) { c.lastErrorLimit = n }
}

// WithErrorPrefix says every error the store returns starts with prefix,
// such as "store: ". The default checks no prefix.
func WithErrorPrefix(prefix string) ContractOption {
	return func(c *contract) { c.errorPrefix = prefix }
}

// contract is one run of the suite.
type contract struct {
	openStore      OpenStore
	id             func(i int) string
	lastErrorLimit int
	errorPrefix    string
}

func (c *contract) open(t *testing.T, withParent bool, grace time.Duration) (store.Store, Host) {
	t.Helper()
	tbl := store.Table{Name: "workspaces", ID: "id", Status: "status", InstanceID: "instance_id", Removed: "removed"}
	if withParent {
		tbl.Parent = "parent_id"
	}
	return c.openStore(t, StoreConfig{Table: tbl, RedriveGrace: grace})
}

// stopper is what a store offers beyond Store for a host that removes
// rows with its own UPDATE; store.Postgres and store.Memory have it. The
// cases about it are skipped for a store without it.
type stopper interface {
	Stopping(ctx context.Context, ps ...store.Pending) error
}

// StoreContract runs the Store contract suite, the one store's own
// Postgres (pgx and database/sql) and Memory pass, against the stores open
// returns: a host with a Store of its own runs it to show the sweeper can
// rely on it. Each case is a subtest, given a fresh table.
//
//	func TestMyStore(t *testing.T) {
//		leaklesstest.StoreContract(t, func(t *testing.T, cfg leaklesstest.StoreConfig) (store.Store, leaklesstest.Host) {
//			db := newTestDB(t) // creates cfg.Table's table
//			return mystore.New(db, cfg.Table, cfg.RedriveGrace), myHost{db}
//		})
//	}
func StoreContract(t *testing.T, open OpenStore, opts ...ContractOption) {
	t.Helper()
	c := &contract{openStore: open, id: func(i int) string { return fmt.Sprintf("ws-%02d", i) }}
	for _, o := range opts {
		o(c)
	}
	for _, sc := range storeCases {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, c) })
	}
}

var storeCases = []struct {
	name string
	run  func(t *testing.T, f *contract)
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

func mustPending(t *testing.T, st store.Store, limit int) []store.Pending {
	t.Helper()
	ps, err := st.Pending(context.Background(), limit)
	if err != nil {
		t.Fatalf("Pending(%d): %v", limit, err)
	}
	return ps
}

func mustFailed(t *testing.T, st store.Store, p store.Pending, err error, delay time.Duration) {
	t.Helper()
	if err := st.Failed(context.Background(), p, err, delay); err != nil {
		t.Fatalf("Failed(%+v): %v", p, err)
	}
}

func mustReaped(t *testing.T, st store.Store, p store.Pending) bool {
	t.Helper()
	ok, err := st.Reaped(context.Background(), p)
	if err != nil {
		t.Fatalf("Reaped(%+v): %v", p, err)
	}
	return ok
}

func mustRemoveTree(t *testing.T, st store.Store, root string) []store.Pending {
	t.Helper()
	ps, err := st.RemoveTree(context.Background(), root)
	if err != nil {
		t.Fatalf("RemoveTree(%s): %v", root, err)
	}
	return ps
}

// ids lists the resource ids of ps, in order.
func ids(ps []store.Pending) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.ResourceID)
	}
	return out
}

func wantIDs(t *testing.T, what string, got []store.Pending, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("%s: got rows %v, want %v", what, ids(got), want)
	}
}

func testPendingListsOnlyRemovedHolders(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	h.Put(t, store.Row{ID: f.id(2), Status: "removed"})
	h.Put(t, store.Row{ID: f.id(3), Status: "active", InstanceID: "i-3"})
	h.Put(t, store.Row{ID: f.id(4), Status: "removed", InstanceID: "i-4"})
	h.Put(t, store.Row{ID: f.id(5), Status: "creating"})

	got := mustPending(t, st, 10)
	want := []store.Pending{{ResourceID: f.id(1), InstanceID: "i-1"}, {ResourceID: f.id(4), InstanceID: "i-4"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending = %+v, want %+v", got, want)
	}
}

func testPendingHonoursLimit(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	for i := 1; i <= 3; i++ {
		h.Put(t, store.Row{ID: f.id(i), Status: "removed", InstanceID: fmt.Sprint("i-", i)})
	}
	wantIDs(t, "Pending(2)", mustPending(t, st, 2), f.id(1), f.id(2))
	wantIDs(t, "Pending(0)", mustPending(t, st, 0))
	wantIDs(t, "Pending(-1)", mustPending(t, st, -1))
}

// A row that keeps failing goes to the back, so it never starves the rest.
func testPendingOldestAttemptFirst(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	for i := 1; i <= 3; i++ {
		h.Put(t, store.Row{ID: f.id(i), Status: "removed", InstanceID: fmt.Sprint("i-", i)})
	}
	ps := mustPending(t, st, 3)
	mustFailed(t, st, ps[0], errors.New("throttled"), dueNow) // due again at once
	wantIDs(t, "after row 1 failed", mustPending(t, st, 3), f.id(2), f.id(3), f.id(1))
	wantIDs(t, "first of them", mustPending(t, st, 1), f.id(2))

	mustFailed(t, st, ps[1], errors.New("throttled"), dueNow)
	wantIDs(t, "after row 2 failed", mustPending(t, st, 3), f.id(3), f.id(1), f.id(2))
}

func testReapedClearsTheRowOnce(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]

	if !mustReaped(t, st, p) {
		t.Fatal("Reaped of an unchanged row = false, want true")
	}
	if r, _ := h.Get(t, f.id(1)); r.InstanceID != "" || r.Status != "removed" {
		t.Fatalf("row after Reaped = %+v, want status removed and no instance", r)
	}
	wantIDs(t, "Pending after Reaped", mustPending(t, st, 10))
	if mustReaped(t, st, p) {
		t.Fatal("second Reaped = true, want false")
	}
}

func testReapedLosesToAHostUpdate(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-old"})
	h.Put(t, store.Row{ID: f.id(2), Status: "removed", InstanceID: "i-2"})
	h.Put(t, store.Row{ID: f.id(3), Status: "removed", InstanceID: "i-3"})
	ps := mustPending(t, st, 10)

	// Between Pending and Reaped the host gives row 1 a new instance,
	// restores row 2, and deletes row 3 outright.
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-new"})
	h.Put(t, store.Row{ID: f.id(2), Status: "active", InstanceID: "i-2"})
	h.Delete(t, f.id(3))

	for _, p := range ps {
		if mustReaped(t, st, p) {
			t.Errorf("Reaped(%+v) after the host changed the row = true, want false", p)
		}
	}
	if r, _ := h.Get(t, f.id(1)); r.InstanceID != "i-new" {
		t.Errorf("row 1 holds %q, want the host's new i-new", r.InstanceID)
	}
	if r, _ := h.Get(t, f.id(2)); r.InstanceID != "i-2" || r.Status != "active" {
		t.Errorf("row 2 = %+v, want active holding i-2", r)
	}
	if _, ok := h.Get(t, f.id(3)); ok {
		t.Error("row 3 came back")
	}
}

func testReapedConcurrentExactlyOneWins(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
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

func testReapedForgetsAttempts(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	mustFailed(t, st, p, errors.New("first"), dueNow)
	mustFailed(t, st, p, errors.New("second"), dueNow)
	if !mustReaped(t, st, p) {
		t.Fatal("Reaped = false, want true")
	}

	// The same instance id held again (the host re-recorded it) starts
	// from a clean slate.
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	got := mustPending(t, st, 1)
	want := []store.Pending{{ResourceID: f.id(1), InstanceID: "i-1"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending after Reaped = %+v, want %+v (no attempts)", got, want)
	}
}

func testFailedHidesUntilDue(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	h.Put(t, store.Row{ID: f.id(2), Status: "removed", InstanceID: "i-2"})
	p := mustPending(t, st, 10)[0]

	mustFailed(t, st, p, errors.New("RequestLimitExceeded"), dueLater)
	wantIDs(t, "Pending while row 1 waits", mustPending(t, st, 10), f.id(2))

	// A zero delay is the row's backoff running out.
	mustFailed(t, st, p, errors.New("InternalError"), dueNow)
	got := mustPending(t, st, 10)
	want := []store.Pending{
		{ResourceID: f.id(2), InstanceID: "i-2"},
		{ResourceID: f.id(1), InstanceID: "i-1", Attempts: 2, LastError: "InternalError"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending once due = %+v, want %+v", got, want)
	}
}

func testFailedWithZeroDelayLeavesRowDue(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	mustFailed(t, st, p, nil, 0)
	got := mustPending(t, st, 1)
	want := []store.Pending{{ResourceID: f.id(1), InstanceID: "i-1", Attempts: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending = %+v, want %+v", got, want)
	}
}

func testFailedCountsConcurrentFailures(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
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

func testFailedRestartsCountForANewInstance(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-old"})
	p := mustPending(t, st, 1)[0]
	mustFailed(t, st, p, errors.New("a"), dueNow)
	mustFailed(t, st, p, errors.New("b"), dueLater)

	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-new"})
	got := mustPending(t, st, 1)
	want := []store.Pending{{ResourceID: f.id(1), InstanceID: "i-new"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Pending for the new instance = %+v, want %+v (due, no attempts)", got, want)
	}
	mustFailed(t, st, got[0], errors.New("c"), dueNow)
	if a := mustPending(t, st, 1)[0].Attempts; a != 1 {
		t.Fatalf("Attempts for the new instance = %d, want 1", a)
	}
}

func testFailedTruncatesLastError(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	long := "x" + strings.Repeat("é", 2000) // 4001 bytes; the cut falls inside a rune
	mustFailed(t, st, p, errors.New(long), dueNow)

	want := long
	if f.lastErrorLimit > 0 {
		// The longest prefix of at most the limit that ends on a rune.
		cut := f.lastErrorLimit
		for cut > 0 && !utf8.RuneStart(long[cut]) {
			cut--
		}
		want = long[:cut]
	}
	got := mustPending(t, st, 1)[0].LastError
	if got != want || !utf8.ValidString(got) {
		t.Fatalf("LastError is %d bytes (valid UTF-8: %v, a prefix: %v), want the first %d bytes of the error",
			len(got), utf8.ValidString(got), strings.HasPrefix(long, got), len(want))
	}
}

func testFailedOnMissingRowRecordsNothing(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	p := store.Pending{ResourceID: f.id(1), InstanceID: "i-1"}
	mustFailed(t, st, p, errors.New("boom"), dueLater)
	// A row created later with that id and instance is due at once.
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	got := mustPending(t, st, 1)
	if !slices.Equal(got, []store.Pending{p}) {
		t.Fatalf("Pending = %+v, want %+v", got, []store.Pending{p})
	}
}

// notFoundFor returns the NotFoundFor that Pending reports for the only
// row due.
func notFoundFor(t *testing.T, st store.Store) time.Duration {
	t.Helper()
	ps := mustPending(t, st, 10)
	if len(ps) != 1 {
		t.Fatalf("Pending = %+v, want one row", ps)
	}
	return ps[0].NotFoundFor
}

// NotFoundFor counts from the first of an unbroken run of NotFound
// answers, by the store's clock; any other error ends the run.
func testFailedKeepsTheFirstNotFound(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := store.Pending{ResourceID: f.id(1), InstanceID: "i-1"}
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

func testFailedNotFoundRestartsForANewInstance(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-old"})
	mustFailed(t, st, store.Pending{ResourceID: f.id(1), InstanceID: "i-old"}, teardown.ErrNotFound, dueNow)
	time.Sleep(30 * time.Millisecond)

	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-new"})
	if got := notFoundFor(t, st); got != 0 {
		t.Fatalf("NotFoundFor of the new instance = %v, want 0: the old one's NotFound does not count", got)
	}
	start := time.Now()
	mustFailed(t, st, store.Pending{ResourceID: f.id(1), InstanceID: "i-new"}, teardown.ErrNotFound, dueNow)
	got := notFoundFor(t, st)
	if elapsed := time.Since(start); got <= 0 || got > elapsed+time.Millisecond {
		t.Fatalf("NotFoundFor of the new instance = %v, want more than 0 and at most %v", got, elapsed)
	}
}

// The bug this closes: an earlier delete removed the middle level, its
// stops failed, and the retried delete's cascade skipped removed rows.
func testRemoveTreeRedrivesAlreadyRemovedRows(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	root, midA, midB := f.id(1), f.id(2), f.id(3)
	leafA, leafB, leafC, other := f.id(4), f.id(5), f.id(6), f.id(7)
	h.Put(t, store.Row{ID: root, Status: "active", InstanceID: "i-root"})
	h.Put(t, store.Row{ID: midA, Parent: root, Status: "active", InstanceID: "i-midA"})
	h.Put(t, store.Row{ID: midB, Parent: root, Status: "active"})
	h.Put(t, store.Row{ID: leafA, Parent: midA, Status: "active", InstanceID: "i-leafA"})
	h.Put(t, store.Row{ID: leafB, Parent: midB, Status: "creating", InstanceID: "i-leafB"})
	h.Put(t, store.Row{ID: leafC, Parent: midB, Status: "active"})
	h.Put(t, store.Row{ID: other, Status: "active", InstanceID: "i-other"})

	wantIDs(t, "earlier delete of the middle level", mustRemoveTree(t, st, midA), midA, leafA)

	want := []store.Pending{
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
		if r, _ := h.Get(t, id); r.Status != "removed" {
			t.Errorf("row %s status %q, want removed", id, r.Status)
		}
	}
	if r, _ := h.Get(t, other); r.Status != "active" {
		t.Errorf("unrelated row status %q, want active", r.Status)
	}
}

func testRemoveTreeEndsOnParentCycle(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	a, b, c := f.id(1), f.id(2), f.id(3)
	h.Put(t, store.Row{ID: a, Parent: c, Status: "active", InstanceID: "i-a"})
	h.Put(t, store.Row{ID: b, Parent: a, Status: "active", InstanceID: "i-b"})
	h.Put(t, store.Row{ID: c, Parent: b, Status: "active", InstanceID: "i-c"})
	h.Put(t, store.Row{ID: f.id(4), Parent: f.id(4), Status: "active", InstanceID: "i-self"})

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

func testRemoveTreeUnknownRoot(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "active", InstanceID: "i-1"})
	got, err := st.RemoveTree(context.Background(), f.id(2))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveTree(unknown) = %v, %v; want ErrNotFound", got, err)
	}
	if r, _ := h.Get(t, f.id(1)); r.Status != "active" {
		t.Fatalf("other row status %q, want active", r.Status)
	}
}

func testRemoveTreeWithoutHolders(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "creating"})
	h.Put(t, store.Row{ID: f.id(2), Parent: f.id(1), Status: "active"})
	got, err := st.RemoveTree(context.Background(), f.id(1))
	if err != nil || len(got) != 0 {
		t.Fatalf("RemoveTree = %+v, %v; want no holders and no error", got, err)
	}
	for _, id := range []string{f.id(1), f.id(2)} {
		if r, _ := h.Get(t, id); r.Status != "removed" {
			t.Errorf("row %s status %q, want removed", id, r.Status)
		}
	}
}

func testRemoveTreeWithoutParentColumn(t *testing.T, f *contract) {
	st, h := f.open(t, false, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "active", InstanceID: "i-1"})
	h.Put(t, store.Row{ID: f.id(2), Parent: f.id(1), Status: "active", InstanceID: "i-2"})
	wantIDs(t, "RemoveTree", mustRemoveTree(t, st, f.id(1)), f.id(1))
	if r, _ := h.Get(t, f.id(2)); r.Status != "active" {
		t.Fatalf("child status %q, want active: the Table names no parent column", r.Status)
	}
}

func testRemoveTreeReportsAttempts(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	p := mustPending(t, st, 1)[0]
	mustFailed(t, st, p, fmt.Errorf("boom: %w", teardown.ErrNotFound), dueLater)
	got := mustRemoveTree(t, st, f.id(1))
	if len(got) != 1 || got[0].NotFoundFor <= 0 {
		t.Fatalf("RemoveTree = %+v, want one row with a NotFoundFor", got)
	}
	got[0].NotFoundFor = 0
	want := []store.Pending{{ResourceID: f.id(1), InstanceID: "i-1", Attempts: 1, LastError: "boom: " + teardown.ErrNotFound.Error()}}
	if !slices.Equal(got, want) {
		t.Fatalf("RemoveTree = %+v, want %+v", got, want)
	}
}

// The request that called RemoveTree is stopping the holders itself; the
// sweeper must not stop them again at once. Rows removed by anything else
// stay due, and the holders' attempt state is kept.
func testRemoveTreeDefersTheRedrive(t *testing.T, f *contract) {
	for _, grace := range []time.Duration{store.DefaultRedriveGrace, time.Hour} {
		st, h := f.open(t, true, grace)
		root, child, other := f.id(1), f.id(2), f.id(3)
		h.Put(t, store.Row{ID: root, Status: "removed", InstanceID: "i-root"})
		h.Put(t, store.Row{ID: child, Parent: root, Status: "active", InstanceID: "i-child"})
		h.Put(t, store.Row{ID: other, Status: "removed", InstanceID: "i-other"}) // removed by the host's own UPDATE
		mustFailed(t, st, store.Pending{ResourceID: root, InstanceID: "i-root"}, errors.New("throttled"), dueNow)

		want := []store.Pending{
			{ResourceID: root, InstanceID: "i-root", Attempts: 1, LastError: "throttled"},
			{ResourceID: child, InstanceID: "i-child"},
		}
		if got := mustRemoveTree(t, st, root); !slices.Equal(got, want) {
			t.Fatalf("RemoveTree = %+v, want %+v", got, want)
		}
		wantIDs(t, fmt.Sprintf("Pending during a grace of %v", grace), mustPending(t, st, 10), other)

		// A retried delete still returns them, attempt state unchanged.
		if got := mustRemoveTree(t, st, root); !slices.Equal(got, want) {
			t.Fatalf("retried RemoveTree = %+v, want %+v", got, want)
		}
		// A failure recorded meanwhile decides the row's due time again.
		mustFailed(t, st, want[0], errors.New("throttled"), dueNow)
		wantIDs(t, "Pending after a failure", mustPending(t, st, 10), other, root)
	}
}

func testRemoveTreeWithoutGrace(t *testing.T, f *contract) {
	st, h := f.open(t, true, 0)
	h.Put(t, store.Row{ID: f.id(1), Status: "active", InstanceID: "i-1"})
	h.Put(t, store.Row{ID: f.id(2), Parent: f.id(1), Status: "active", InstanceID: "i-2"})
	mustRemoveTree(t, st, f.id(1))
	wantIDs(t, "Pending with no grace", mustPending(t, st, 10), f.id(1), f.id(2))
}

// Once its grace is over a row that never failed comes before rows that
// did, as a never-attempted row does.
func testGraceOverSortsFirst(t *testing.T, f *contract) {
	const grace = time.Millisecond
	st, h := f.open(t, true, grace)
	// A grace's record and no record at all tie, broken by id.
	deferred, fresh, failed := f.id(1), f.id(2), f.id(3)
	h.Put(t, store.Row{ID: failed, Status: "removed", InstanceID: "i-1"})
	h.Put(t, store.Row{ID: fresh, Status: "removed", InstanceID: "i-2"})
	h.Put(t, store.Row{ID: deferred, Status: "active", InstanceID: "i-3"})
	mustFailed(t, st, store.Pending{ResourceID: failed, InstanceID: "i-1"}, errors.New("boom"), dueNow)
	mustRemoveTree(t, st, deferred)
	time.Sleep(20 * grace)
	wantIDs(t, "Pending once the grace is over", mustPending(t, st, 10), deferred, fresh, failed)
}

func testStoppingDefersTheRedrive(t *testing.T, f *contract) {
	st, h := f.open(t, true, time.Hour)
	s, ok := st.(stopper)
	if !ok {
		t.Skipf("%T has no Stopping method", st)
	}
	stopping, replaced, untold := f.id(1), f.id(2), f.id(3)
	h.Put(t, store.Row{ID: stopping, Status: "removed", InstanceID: "i-1"})
	h.Put(t, store.Row{ID: replaced, Status: "removed", InstanceID: "i-new"})
	h.Put(t, store.Row{ID: untold, Status: "removed", InstanceID: "i-3"})
	mustFailed(t, st, store.Pending{ResourceID: stopping, InstanceID: "i-1"}, errors.New("boom"), dueNow)

	err := s.Stopping(context.Background(),
		store.Pending{ResourceID: stopping, InstanceID: "i-1"},
		store.Pending{ResourceID: replaced, InstanceID: "i-old"}, // the row holds another instance now
		store.Pending{ResourceID: f.id(4), InstanceID: "i-4"},    // no such row
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
	want := []store.Pending{{ResourceID: stopping, InstanceID: "i-1", Attempts: 1, LastError: "boom"}}
	if !slices.Equal(got, want) {
		t.Fatalf("RemoveTree after Stopping = %+v, want %+v", got, want)
	}
}

func testKnown(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	removedHolding, removedCleared, liveHolding, liveNone, creatingNone, noRow, removedRefused :=
		f.id(1), f.id(2), f.id(3), f.id(4), f.id(5), f.id(6), f.id(7)
	h.Put(t, store.Row{ID: removedHolding, Status: "removed", InstanceID: "i-removed"})
	// A removed row whose stop failed for good: removed, holding, and not
	// stopping (nothing will finish it but a person).
	h.Put(t, store.Row{ID: removedRefused, Status: "removed", InstanceID: "i-refused"})
	if err := st.Failed(context.Background(), store.Pending{ResourceID: removedRefused, InstanceID: "i-refused"},
		teardown.Permanent(errors.New("OperationNotPermitted")), time.Hour); err != nil {
		t.Fatalf("Failed: %v", err)
	}
	h.Put(t, store.Row{ID: removedCleared, Status: "removed"})
	h.Put(t, store.Row{ID: liveHolding, Status: "active", InstanceID: "i-live"})
	h.Put(t, store.Row{ID: liveNone, Status: "active"})
	h.Put(t, store.Row{ID: creatingNone, Status: "creating"})

	resources := []string{removedHolding, removedCleared, liveHolding, liveNone, creatingNone, noRow, removedRefused,
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
	if !maps.Equal(k.Provisioning, wantProvisioning) {
		t.Errorf("Provisioning = %v, want %v", k.Provisioning, wantProvisioning)
	}
	if !maps.Equal(k.Held, wantHeld) {
		t.Errorf("Held = %v, want %v", k.Held, wantHeld)
	}
	wantRemoved := map[string]bool{removedHolding: true, removedCleared: true, strings.ToUpper(removedCleared): true, removedRefused: true}
	if !maps.Equal(k.Removed, wantRemoved) {
		t.Errorf("Removed = %v, want %v", k.Removed, wantRemoved)
	}
	// Stopping is optional: a store that leaves it nil says nothing of it,
	// and the dependents sweep then judges a removed row's dependents
	// without it.
	if wantStopping := map[string]bool{removedHolding: true}; k.Stopping != nil && !maps.Equal(k.Stopping, wantStopping) {
		t.Errorf("Stopping = %v, want %v", k.Stopping, wantStopping)
	}

	k, err = st.Known(context.Background(), nil, nil)
	if err != nil || k.Held == nil || k.Provisioning == nil || k.Removed == nil ||
		len(k.Held)+len(k.Provisioning)+len(k.Removed) != 0 || k.Now.IsZero() {
		t.Fatalf("Known(nil, nil) = %+v, %v; want empty non-nil maps and the time of the read", k, err)
	}
}

func testCanceledContext(t *testing.T, f *contract) {
	st, h := f.open(t, true, store.DefaultRedriveGrace)
	h.Put(t, store.Row{ID: f.id(1), Status: "removed", InstanceID: "i-1"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := store.Pending{ResourceID: f.id(1), InstanceID: "i-1"}
	_, errPending := st.Pending(ctx, 1)
	_, errReaped := st.Reaped(ctx, p)
	errFailed := st.Failed(ctx, p, errors.New("boom"), dueNow)
	_, errTree := st.RemoveTree(ctx, f.id(1))
	_, errKnown := st.Known(ctx, []string{f.id(1)}, []string{"i-1"})
	errs := map[string]error{
		"Pending": errPending, "Reaped": errReaped, "Failed": errFailed, "RemoveTree": errTree, "Known": errKnown,
	}
	if s, ok := st.(stopper); ok {
		errs["Stopping"] = s.Stopping(ctx, p)
	}
	for name, err := range errs {
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), f.errorPrefix) {
			t.Errorf("%s on a canceled context: %v, want an error starting %q wrapping context.Canceled", name, err, f.errorPrefix)
		}
	}
	if r, _ := h.Get(t, f.id(1)); r.InstanceID != "i-1" {
		t.Fatalf("row changed by canceled calls: %+v", r)
	}
}
