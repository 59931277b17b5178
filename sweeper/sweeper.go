package sweeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// Leader decides which replica sweeps. A store Lease satisfies it.
type Leader interface {
	// Lead acquires or renews leadership and reports whether this replica
	// leads.
	Lead(ctx context.Context) (bool, error)
	// Release gives leadership up, so another replica can take over at once.
	Release(ctx context.Context) error
}

// Report is what one pass did.
type Report struct {
	Pending           int           // removed rows holding an instance that the pass attempted
	Reaped            int           // of those, stopped (or found gone) and recorded
	Failed            int           // of those, failed and given a per-row backoff
	Unfinished        int           // of those, stopped but not finished (teardown.ErrPending): due again after the row backoff's base, reported as no failure
	RowGoneSeen       int           // candidates from the inventory seen (row removed, or older than MinAge and in no row's use)
	RowGoneTerminated int           // of those, terminated
	Kept              int           // owned instances no row holds that RowGone.KeepTag kept
	DryRun            int           // instances a dry run would have stopped or terminated
	Aborted           string        // why the inventory step terminated nothing (an Abort constant), or ""
	DependentsSeen    int           // with WithDependents: owned dependents whose row is removed or missing, past MinAge
	DependentsReaped  int           // of those, deleted, released or cancelled (or found gone)
	DependentsAborted string        // why the dependents step reaped nothing (an Abort constant), or ""
	Duration          time.Duration // how long the pass took
}

// Sweeper re-drives removed rows that still hold an instance and, when
// configured, reaps owned instances that no row explains. Create it with
// [New]; run it with [Sweeper.Run] or drive passes with [Sweeper.SweepOnce].
// Its methods are safe for concurrent use; passes never overlap.
type Sweeper struct {
	store   store.Store
	stopper teardown.Stopper
	cfg     config
	retry   []teardown.Option
	metrics *metrics

	mu      sync.Mutex        // held for a whole pass
	orphans map[string]orphan // row-gone candidates of the last pass, by instance id
	queued  []events.Event    // this pass's events not yet written: see flush
	sinkErr error             // the pass's first sink failure; later events are only logged
	more    atomic.Bool       // the last pass ran out of time with rows still due
	invCut  bool              // the last pass's inventory steps ran out of its time (guarded by mu)
}

// New returns a Sweeper that reads pending rows from st and stops their
// instances with s. A nil dependency or a bad option is an error wrapping
// [ErrConfig].
func New(st store.Store, s teardown.Stopper, opts ...Option) (*Sweeper, error) {
	if st == nil {
		return nil, fmt.Errorf("%w: store is nil", ErrConfig)
	}
	if f, ok := s.(teardown.StopperFunc); s == nil || ok && f == nil {
		return nil, fmt.Errorf("%w: stopper is nil", ErrConfig)
	}
	cfg := newConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	retry := append([]teardown.Option{teardown.WithConcurrency(cfg.concurrency)}, cfg.retry...)
	if err := checkRetry(retry); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.meterProvider)
	if err != nil {
		return nil, err
	}
	return &Sweeper{
		store:   st,
		stopper: s,
		cfg:     cfg,
		retry:   retry,
		metrics: m,
		orphans: make(map[string]orphan),
	}, nil
}

// checkRetry surfaces a bad teardown option now rather than on every stop.
// StopWithRetry rejects bad options, and then an empty id, before it calls
// the stopper or any hook, so this call does nothing but validate.
func checkRetry(opts []teardown.Option) error {
	never := teardown.StopperFunc(func(context.Context, string) error { return nil })
	if err := teardown.StopWithRetry(context.Background(), never, "", opts...); errors.Is(err, teardown.ErrConfig) {
		return fmt.Errorf("%w: retry options: %w", ErrConfig, err)
	}
	return nil
}

// errPassTimeout is why a pass's work ends when its own time is up, as
// opposed to the caller's context ending.
var errPassTimeout = fmt.Errorf("sweeper: pass timeout: %w", context.DeadlineExceeded)

// SweepOnce runs one pass and reports what it did. It first re-drives due
// rows page by page until none is due or a quarter of the pass timeout
// remains. With [WithInventory], [WithRowGone] or [WithDependents] the
// re-drive stops at three eighths of it, and the pass then does the
// inventory steps (one listing of the dependents and one of the
// instances, one store read each, one re-check of the candidates, at most
// RowGone.MaxPerPass terminations): the re-drive makes progress page by
// page, an inventory step only when it completes, so neither starves the
// other however large the backlog. When a pass leaves rows due and its
// inventory steps run out of time too, the next pass is the re-drive's
// alone, and the one after runs them again. The last quarter is kept for
// recording results, which go on even if ctx is cancelled: an instance
// stopped is an instance written down. A page's results are written to the
// store first and its events after, in one batch, so a slow events sink
// delays the pass by at most its remaining time and never leaves a stopped
// row uncleared.
//
// The error is non-nil when part of the pass could not run (a store or
// inventory error, or ctx ending); the Report still counts what was done.
// A breaker trip is not an error: it is in Report.Aborted.
func (s *Sweeper) SweepOnce(ctx context.Context) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	start := time.Now()
	end := start.Add(s.cfg.passTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	// Stops and reads end when three quarters are spent; the rest is kept
	// for writing down what happened, even if ctx is cancelled meanwhile.
	work, cancelWork := context.WithDeadlineCause(ctx, start.Add(end.Sub(start)*3/4), errPassTimeout)
	defer cancelWork()
	bk, cancelBk := context.WithDeadline(context.WithoutCancel(ctx), end)
	defer cancelBk()

	s.queued, s.sinkErr = s.queued[:0], nil
	var rep Report
	var errs []error
	inventory := s.cfg.inventory != nil || s.cfg.dependents != nil
	// When the last pass left rows due and its inventory steps ran out of
	// time as well, this pass is the re-drive's alone: an inventory step
	// cut short gains nothing, and the next pass runs it again.
	skip := inventory && s.more.Load() && s.invCut
	redrive := work
	if inventory && !skip {
		var cancel context.CancelFunc
		redrive, cancel = context.WithDeadlineCause(work, start.Add(end.Sub(start)*3/8), errPassTimeout)
		defer cancel()
	}
	if err := s.redriveAll(redrive, bk, &rep); err != nil {
		errs = append(errs, err)
	}
	s.invCut = false
	if skip {
		s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: inventory steps left to the next pass: the last one ran out of time for them and for the backlog")
		inventory = false
	}
	// The cloud is listed once for the inventory steps, before either
	// reads the store: the dependents first, then the instances, which
	// both steps judge by.
	var listed listing
	if inventory && s.cfg.dependents != nil {
		listed.deps, listed.depsErr = s.cfg.dependents.inv.OwnedDependents(work)
	}
	if inventory && s.cfg.inventory != nil {
		rg := s.reapRowGone(work, bk, &listed)
		rep.RowGoneSeen, rep.RowGoneTerminated, rep.Aborted = rg.seen, rg.terminated, rg.aborted
		rep.Kept, rep.DryRun = rg.kept, rep.DryRun+rg.dryRun
		if rg.err != nil {
			errs = append(errs, rg.err)
		}
		s.metrics.rowGone(bk, rg.seen, rg.terminated)
	}
	if inventory && s.cfg.dependents != nil {
		errs = append(errs, s.reapDependents(work, bk, &listed, &rep)) // dependents.go; nil is dropped by errors.Join
	}
	s.invCut = inventory && errors.Is(context.Cause(work), errPassTimeout)
	s.flush(bk)
	s.recordBacklog(bk)
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("sweeper: pass cut short: %w", context.Cause(ctx)))
	}
	rep.Duration = time.Since(start)
	outcome := OutcomeCompleted
	switch {
	case rep.Aborted != "":
		outcome = OutcomeAborted
	case ctx.Err() != nil || s.more.Load():
		outcome = OutcomeCutShort
	}
	s.metrics.pass(bk, rep, outcome)

	err := errors.Join(errs...)
	level := slog.LevelDebug
	if rep.Pending+rep.RowGoneSeen > 0 {
		level = slog.LevelInfo
	}
	if err != nil {
		level = slog.LevelWarn
	}
	s.cfg.log.LogAttrs(bk, level, "sweeper: pass",
		slog.Int("pending", rep.Pending), slog.Int("reaped", rep.Reaped), slog.Int("failed", rep.Failed), slog.Int("unfinished", rep.Unfinished),
		slog.Int("row_gone_seen", rep.RowGoneSeen), slog.Int("row_gone_terminated", rep.RowGoneTerminated),
		slog.Int("kept", rep.Kept), slog.Int("dry_run", rep.DryRun),
		slog.Int("dependents_seen", rep.DependentsSeen), slog.Int("dependents_reaped", rep.DependentsReaped),
		slog.String("aborted", rep.Aborted), slog.String("dependents_aborted", rep.DependentsAborted),
		slog.Duration("duration", rep.Duration), slog.Any("error", err))
	return rep, err
}

// listing is what one pass listed of the cloud, shared by its inventory
// steps.
type listing struct {
	deps    []teardown.Dependent // the owned dependents, when the dependents step is on
	depsErr error
	owned   []teardown.Instance // the owned instances, when ownedOK
	ownedOK bool
}

// redriveAll pages through the due rows until none is left or work ends.
// Nothing in it grows with the backlog: a row's result, once recorded,
// takes it out of the due rows (cleared, or hidden for its backoff), so
// the next page is new rows. A row whose result could not be recorded
// stays due and comes straight back; the rows of the last page are kept
// (a page's worth, however large the backlog) to leave those out, and a
// page of nothing else ends the pass.
func (s *Sweeper) redriveAll(work, bk context.Context, rep *Report) error {
	var errs []error
	var last map[store.Pending]bool // the rows of the previous page
	full := false                   // the last page read was a whole batch: more may be due
	defer func() { s.more.Store(full && work.Err() != nil) }()
	for work.Err() == nil {
		page, err := s.store.Pending(work, s.cfg.batchSize)
		if err != nil {
			if work.Err() != nil && rep.Pending > 0 {
				break // out of time mid-drain: the rest waits for the next pass
			}
			errs = append(errs, fmt.Errorf("sweeper: read pending rows: %w", err))
			break
		}
		fresh := page[:0:0]
		taken := make(map[store.Pending]bool, len(page))
		for _, p := range page {
			key := store.Pending{ResourceID: p.ResourceID, InstanceID: p.InstanceID}
			taken[key] = true
			if !last[key] {
				fresh = append(fresh, p)
			}
		}
		last = taken
		if len(fresh) == 0 {
			break
		}
		rep.Pending += len(fresh)
		ok, err := s.redrive(work, bk, fresh, rep)
		if err != nil {
			errs = append(errs, err)
		}
		if ok == 0 {
			break // no result of the page could be recorded: the store is down, or the pass is over
		}
		if len(s.queued) >= flushAt {
			s.flush(bk)
		}
		if full = len(page) >= s.cfg.batchSize; !full {
			break
		}
	}
	return errors.Join(errs...)
}

// flushAt is how many events a pass holds before writing them mid-pass;
// the rest are written when the pass ends.
const flushAt = 1000

// redrive stops one page of rows and records each result; its events are
// queued for the pass's next flush. ok counts the results recorded as they
// are. With a [store.BatchStore] a page's clears are one statement and its
// failures another.
func (s *Sweeper) redrive(work, bk context.Context, page []store.Pending, rep *Report) (ok int, err error) {
	if s.cfg.dryRun {
		for _, p := range page {
			rep.DryRun++
			s.emit(events.TypeDryRun, p.ResourceID, map[string]any{
				"resource_id": p.ResourceID, "instance_id": p.InstanceID, "attempts": p.Attempts, "action": "stop", "reason": "row_removed",
			})
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: dry run: would stop",
				slog.String("resource_id", p.ResourceID), slog.String("instance_id", p.InstanceID))
		}
		// Nothing is recorded, so the same rows would come back: a dry run
		// reports one page a pass.
		return 0, nil
	}
	ids := make([]string, 0, len(page))
	for _, p := range page {
		ids = append(ids, p.InstanceID)
	}
	results := teardown.StopAll(work, s.stopper, dedupe(ids), s.retry...)

	var reaped []reapedRow
	var failed []failedRow
	for _, p := range page {
		err := results[p.InstanceID]
		// EC2 answers NotFound for an instance it has not propagated yet:
		// only an answer that has held for the settle window means gone.
		settled := errors.Is(err, teardown.ErrNotFound) &&
			(s.cfg.notFoundAfter == 0 || p.NotFoundFor > 0 && p.NotFoundFor >= s.cfg.notFoundAfter)
		switch {
		case err == nil || errors.Is(err, teardown.ErrGone) || settled:
			reaped = append(reaped, reapedRow{p: p, settled: settled})
		case cutShort(work, err):
			// The pass ended before this stop was really tried: not the
			// row's failure, so no backoff; it stays due for the next pass.
		case teardown.IsPending(err):
			// Accepted, not finished (dependents wait for the termination):
			// due again soon, whatever its past failures.
			failed = append(failed, failedRow{f: store.Failure{Pending: p, Err: err, Delay: s.rowDelay(0, false)}, pending: true})
		default:
			permanent := teardown.IsPermanent(err)
			failed = append(failed, failedRow{
				f:         store.Failure{Pending: p, Err: err, Delay: s.rowDelay(p.Attempts, permanent)},
				permanent: permanent,
			})
		}
	}
	var errs []error
	n, unwritten, err := s.recordReaped(bk, reaped, rep)
	ok += n
	if err != nil {
		errs = append(errs, err)
	}
	// A row whose clear cannot be written (a NOT NULL column, a trigger)
	// must not stay first in line and starve the rest.
	failed = append(failed, unwritten...)
	n, err = s.recordFailed(bk, failed, rep)
	ok += n
	if err != nil {
		errs = append(errs, err)
	}
	return ok, errors.Join(errs...)
}

// reapedRow is a row whose instance is stopped or gone, to be cleared.
type reapedRow struct {
	p       store.Pending
	settled bool // gone by a NotFound that has held for the settle window
}

// failedRow is a row whose stop failed, to be given a backoff.
type failedRow struct {
	f         store.Failure
	permanent bool
	clear     bool // the stop succeeded; recording the clear failed
	pending   bool // the stop was accepted and is not finished: no failure
}

// recordReaped clears the rows, in one statement when the store can; a
// page the batch could not write is written row by row, so one row that
// cannot be cleared does not keep the rest. It returns how many were
// recorded and, as failures to record with a backoff, the rows whose clear
// could not be written.
func (s *Sweeper) recordReaped(bk context.Context, rows []reapedRow, rep *Report) (int, []failedRow, error) {
	if len(rows) == 0 {
		return 0, nil, nil
	}
	written := make([]error, len(rows))
	if bs, ok := s.store.(store.BatchStore); ok && len(rows) > 1 {
		ps := make([]store.Pending, len(rows))
		for i, r := range rows {
			ps[i] = r.p
		}
		if cleared, err := bs.ReapedAll(bk, ps); err == nil {
			return s.reapedEvents(bk, rows, cleared, written, rep)
		}
	}
	cleared := make([]bool, len(rows))
	for i, r := range rows {
		cleared[i], written[i] = s.store.Reaped(bk, r.p)
	}
	return s.reapedEvents(bk, rows, cleared, written, rep)
}

// reapedEvents counts and reports the clears; written[i] is the error of
// row i's clear, if any.
func (s *Sweeper) reapedEvents(bk context.Context, rows []reapedRow, cleared []bool, written []error, rep *Report) (int, []failedRow, error) {
	ok := 0
	var unwritten []failedRow
	var errs []error
	for i, r := range rows {
		p := r.p
		if err := written[i]; err != nil {
			errs = append(errs, fmt.Errorf("sweeper: record reaped row %q: %w", p.ResourceID, err))
			unwritten = append(unwritten, failedRow{f: store.Failure{Pending: p, Err: err, Delay: s.rowDelay(p.Attempts, false)}, clear: true})
			continue
		}
		ok++
		rep.Reaped++
		s.metrics.reaped(bk)
		payload := map[string]any{
			"resource_id": p.ResourceID, "instance_id": p.InstanceID, "attempts": p.Attempts + 1, "cleared": cleared[i],
		}
		if r.settled {
			payload["not_found_for"] = p.NotFoundFor.Round(time.Second).String()
		}
		s.emit(events.TypeReaped, p.ResourceID, payload)
		s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: reaped",
			slog.String("resource_id", p.ResourceID), slog.String("instance_id", p.InstanceID), slog.Bool("cleared", cleared[i]))
	}
	return ok, unwritten, errors.Join(errs...)
}

// recordFailed gives the rows their backoff, in one statement when the
// store can (row by row if that statement fails), and reports each stop
// failure. It returns how many were recorded.
func (s *Sweeper) recordFailed(bk context.Context, rows []failedRow, rep *Report) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	written := make([]error, len(rows))
	batched := false
	if bs, ok := s.store.(store.BatchStore); ok && len(rows) > 1 {
		fs := make([]store.Failure, len(rows))
		for i, r := range rows {
			fs[i] = r.f
		}
		batched = bs.FailedAll(bk, fs) == nil
	}
	if !batched {
		for i, r := range rows {
			written[i] = s.store.Failed(bk, r.f.Pending, r.f.Err, r.f.Delay)
		}
	}
	ok := 0
	var errs []error
	for i, r := range rows {
		p, err := r.f.Pending, r.f.Err
		if written[i] != nil {
			errs = append(errs, fmt.Errorf("sweeper: record failed row %q: %w", p.ResourceID, written[i]))
			continue
		}
		if r.pending {
			ok++
			rep.Unfinished++
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: stopped, not finished",
				slog.String("resource_id", p.ResourceID), slog.String("instance_id", p.InstanceID),
				slog.Duration("retry_in", r.f.Delay), slog.Any("error", err))
			continue
		}
		rep.Failed++
		if r.clear {
			continue // counted and reported as its clear's failure
		}
		ok++
		code := errorCode(err)
		s.metrics.failed(bk, code, r.permanent)
		s.emit(events.TypeReapFailed, p.ResourceID, map[string]any{
			"resource_id": p.ResourceID, "instance_id": p.InstanceID, "attempts": p.Attempts + 1,
			"error": errText(err), "error_code": code, "permanent": r.permanent,
			"not_found": errors.Is(err, teardown.ErrNotFound), "retry_in": r.f.Delay.String(),
		})
		s.cfg.log.LogAttrs(bk, slog.LevelWarn, "sweeper: reap failed",
			slog.String("resource_id", p.ResourceID), slog.String("instance_id", p.InstanceID),
			slog.String("error_code", code), slog.Bool("permanent", r.permanent), slog.Duration("retry_in", r.f.Delay), slog.Any("error", err))
	}
	return ok, errors.Join(errs...)
}

// cutShort reports whether err is only the pass's own context ending before
// the stopper could give a real answer.
func cutShort(work context.Context, err error) bool {
	if work.Err() == nil {
		return false
	}
	last := err
	var re *teardown.RetryError
	if errors.As(err, &re) {
		if re.Last == nil {
			return true
		}
		last = re.Last
	}
	return errors.Is(last, context.Canceled) || errors.Is(last, context.DeadlineExceeded)
}

// rowDelay is how long a row that failed attempts times before, and failed
// again now, waits for its next attempt.
func (s *Sweeper) rowDelay(attempts int, permanent bool) time.Duration {
	base, max := s.cfg.rowBase, s.cfg.rowMax
	if permanent {
		return max
	}
	d := base
	for i := 0; i < attempts && d < max; i++ {
		if d > max/2 {
			return max
		}
		d *= 2
	}
	return min(d, max)
}

// errorCode returns the API error code err carries (an EC2 code such as
// "OperationNotPermitted"), or "".
func errorCode(err error) string {
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		return coded.ErrorCode()
	}
	return ""
}

// emit queues an event of this pass; flush writes it.
func (s *Sweeper) emit(typ, subject string, payload map[string]any) {
	if s.cfg.sink == nil {
		return
	}
	s.queued = append(s.queued, events.Event{Type: typ, Subject: subject, Payload: payload, At: s.cfg.now()})
}

// flush writes the queued events in one batch, bounded by ctx (the pass's
// bookkeeping deadline). Once the sink has failed in a pass the rest of the
// pass's events are logged, not tried: a blocked sink costs a pass its
// remaining time once, never once per page or per row. A sink that must
// not lose events across outages is wrapped in events.Spool.
func (s *Sweeper) flush(ctx context.Context) {
	es := s.queued
	s.queued = s.queued[len(s.queued):]
	if len(es) == 0 {
		return
	}
	if s.sinkErr == nil {
		s.sinkErr = events.EmitAll(ctx, s.cfg.sink, es)
		if s.sinkErr == nil {
			return
		}
	}
	for _, e := range es {
		s.cfg.log.LogAttrs(ctx, slog.LevelWarn, "sweeper: event not recorded",
			slog.String("type", e.Type), slog.String("subject", e.Subject), slog.Any("payload", e.Payload), slog.Any("error", s.sinkErr))
	}
}

// errText is err's text fit for an event payload: no NUL bytes, which
// PostgreSQL's jsonb refuses, and valid UTF-8.
func errText(err error) string {
	return strings.ToValidUTF8(strings.ReplaceAll(err.Error(), "\x00", ""), "\uFFFD")
}
