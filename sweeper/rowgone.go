package sweeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/census"
	"github.com/leakless/leakless/teardown"
)

// Defaults for [RowGone]'s zero fields.
const (
	DefaultMinAge           = 10 * time.Minute
	DefaultConfirmPasses    = 2
	DefaultMaxPerPass       = 50
	DefaultMaxFraction      = 0.5
	DefaultResourceTag      = "leakless:resource-id"
	DefaultKeepTag          = "leakless:keep"
	DefaultProvisionTimeout = time.Hour
)

// The reasons a row-gone step terminates nothing, as [Report.Aborted], the
// "reason" field of a [events.TypeSweepAborted] event and the reason
// attribute of the aborted metric.
const (
	AbortInventory   = "inventory_error" // listing owned instances failed (or the inventory has no owner filter)
	AbortStore       = "store_error"     // asking the store which instances are explained failed
	AbortMaxPerPass  = "max_per_pass"    // more candidates than RowGone.MaxPerPass
	AbortMaxFraction = "max_fraction"    // candidates are more than RowGone.MaxFraction of owned instances
	AbortCanceled    = "canceled"        // the pass ended before the step could finish
)

// Why an owned instance is a candidate for termination: the "reason" field
// of its events.
const (
	ReasonRowRemoved       = "row_removed"       // its resource-id tag names a removed row and no row holds it
	ReasonRowGone          = "row_gone"          // no row holds it and no live row is provisioning it
	ReasonProvisionTimeout = "provision_timeout" // the live row its tag names has held no instance for longer than ProvisionTimeout
)

// RowGone configures row-gone reaping: terminating owned instances that no
// row explains, the leak a crash between launch and insert, a deleted row,
// or a restart that replaced an instance without stopping the old one
// leaves behind. Its guards also apply to the narrower reaping that
// [WithInventory] turns on.
//
// An owned instance is in use, and never touched, if some row holds it (in
// any status), or it carries the resource-id tag of a live row that holds
// no instance yet and was launched less than ProvisionTimeout ago (still
// provisioning). An instance carrying KeepTag is kept, whatever else holds.
// Every other owned instance is a candidate. A candidate is terminated only
// when all of these hold: it is older than MinAge (unless its tag names a
// removed row); it was a candidate in ConfirmPasses consecutive passes; it
// is still live when looked up again just before counting (a delete in
// flight is not an orphan); the pass listed the inventory and read the
// store without error; and the pass's candidates are no more than
// MaxPerPass and no more than MaxFraction of all owned instances. When a
// check fails the step terminates nothing and emits
// [events.TypeSweepAborted]: an empty or unreachable owner list must never
// look like "everything is orphaned".
//
// Ages are measured against the store's clock at its read (the database's
// now()), never the replica's, which may be off by hours.
//
// Why the order of reads makes this safe: the inventory is listed before
// the store is read. An instance in the listing was launched before the
// listing began, so a host that inserts its row before launching (and tags
// the instance with the row's id) has a row the later store read sees: it
// either holds the instance or is still provisioning with the instance's
// tag. Reading the store first would open a window in which a row is
// inserted and its instance launched between the two reads, so the store
// read misses the row while the listing sees the instance. A host that
// launches before inserting is covered by MinAge, which must exceed its
// longest launch-to-record window, and by ConfirmPasses, which asks a
// second, later pass to agree.
type RowGone struct {
	// MinAge: younger instances (and those with no launch time) are never
	// row-gone candidates. Default 10m.
	MinAge time.Duration
	// ConfirmPasses: a candidate is terminated only after being one in this
	// many consecutive passes, this one included. Default 2.
	ConfirmPasses int
	// MaxPerPass: more candidates than this in a pass terminates none.
	// Default 50.
	MaxPerPass int
	// MaxFraction: candidates making up more than this share of all owned
	// instances terminates none. Default 0.5; 1 turns the check off. With
	// few owned instances one orphan is a large share: that is deliberate,
	// since an empty host table looks exactly like that.
	MaxFraction float64
	// DryRun emits events.TypeDryRun for each confirmed candidate and
	// terminates nothing.
	DryRun bool
	// ResourceTag is the tag key holding the row's id on each instance.
	// Default "leakless:resource-id".
	ResourceTag string
	// KeepTag is the tag key that keeps an instance out of every reaping,
	// whatever its value: the operator's escape hatch. Kept instances are
	// counted in Report.Kept and logged once per pass. Default
	// "leakless:keep".
	KeepTag string
	// ProvisionTimeout bounds how long a live row with no instance yet
	// protects the instances tagged with its id, measured from each
	// instance's launch: past it the create that launched them failed to
	// record them, and they are row-gone candidates. It must exceed the
	// host's longest launch-to-record time. Default 1h.
	ProvisionTimeout time.Duration
}

// withDefaults validates r and fills its zero fields.
func (r RowGone) withDefaults() (RowGone, error) {
	switch {
	case r.MinAge < 0:
		return r, fmt.Errorf("row-gone MinAge must not be negative, got %v", r.MinAge)
	case r.ConfirmPasses < 0:
		return r, fmt.Errorf("row-gone ConfirmPasses must not be negative, got %d", r.ConfirmPasses)
	case r.MaxPerPass < 0:
		return r, fmt.Errorf("row-gone MaxPerPass must not be negative, got %d", r.MaxPerPass)
	case math.IsNaN(r.MaxFraction) || r.MaxFraction < 0 || r.MaxFraction > 1:
		return r, fmt.Errorf("row-gone MaxFraction must be in (0, 1], got %v", r.MaxFraction)
	case r.ProvisionTimeout < 0:
		return r, fmt.Errorf("row-gone ProvisionTimeout must not be negative, got %v", r.ProvisionTimeout)
	}
	if r.MinAge == 0 {
		r.MinAge = DefaultMinAge
	}
	if r.ConfirmPasses == 0 {
		r.ConfirmPasses = DefaultConfirmPasses
	}
	if r.MaxPerPass == 0 {
		r.MaxPerPass = DefaultMaxPerPass
	}
	if r.MaxFraction == 0 {
		r.MaxFraction = DefaultMaxFraction
	}
	if r.ResourceTag == "" {
		r.ResourceTag = DefaultResourceTag
	}
	if r.KeepTag == "" {
		r.KeepTag = DefaultKeepTag
	}
	if r.ProvisionTimeout == 0 {
		r.ProvisionTimeout = DefaultProvisionTimeout
	}
	return r, nil
}

// orphan is what the sweeper remembers about a row-gone candidate between
// passes.
type orphan struct {
	passes   int       // consecutive passes it was a candidate in, this one included
	failures int       // terminations of it that failed
	next     time.Time // no termination is attempted before this
}

// rowGoneResult is what the row-gone step of one pass did.
type rowGoneResult struct {
	seen, terminated, kept, dryRun int
	aborted                        string
	err                            error
}

// candidate is an owned instance the step may terminate, and why.
type candidate struct {
	teardown.Instance
	reason string
}

// reapRowGone runs the inventory step of a pass. It terminates instances
// only after every safety check has passed; any doubt terminates nothing.
func (s *Sweeper) reapRowGone(ctx, bk context.Context, listed *listing) rowGoneResult {
	rg := s.cfg.guard

	// The inventory first, the store second: see RowGone.
	owned, err := s.cfg.inventory.Owned(ctx)
	if err != nil {
		return s.abortRowGone(ctx, bk, AbortInventory, fmt.Errorf("sweeper: list owned instances: %w", err), nil)
	}
	listed.owned, listed.ownedOK = owned, true
	live, iids, rids := census.Live(owned, rg.ResourceTag)
	if len(live) == 0 {
		clear(s.orphans)
		return rowGoneResult{}
	}
	known, err := s.store.Known(ctx, rids, iids)
	if err == nil && known.Now.IsZero() {
		err = errors.New("the store reported no clock (Known.Now is zero), so no instance's age can be told")
	}
	if err != nil {
		return s.abortRowGone(ctx, bk, AbortStore, fmt.Errorf("sweeper: read known rows: %w", err), nil)
	}

	// Every age is measured against the store's clock at its read.
	now := known.Now
	var res rowGoneResult
	var candidates []candidate
	for _, in := range live {
		if known.Held[in.ID] {
			continue
		}
		if _, keep := in.Tags[rg.KeepTag]; keep {
			res.kept++
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: kept by tag",
				slog.String("instance_id", in.ID), slog.String("resource_id", in.Tags[rg.ResourceTag]), slog.String("tag", rg.KeepTag))
			continue
		}
		rid := in.Tags[rg.ResourceTag]
		age := now.Sub(in.LaunchedAt)
		reason := ReasonRowGone
		switch {
		case rid != "" && known.Provisioning[rid]:
			// A launch time we cannot read is a young instance: protected.
			if in.LaunchedAt.IsZero() || age < rg.ProvisionTimeout {
				continue
			}
			reason = ReasonProvisionTimeout
		case rid != "" && known.Removed[rid]:
			// Its row says it is deleted: no age makes it any more in use.
			candidates = append(candidates, candidate{in, ReasonRowRemoved})
			continue
		}
		if !s.cfg.rowGone || in.LaunchedAt.IsZero() || age < rg.MinAge {
			continue
		}
		candidates = append(candidates, candidate{in, reason})
	}

	// A delete in flight terminates its instance and clears its row between
	// the listing and the store read: look again before counting.
	candidates, err = s.recheck(ctx, candidates)
	if err != nil {
		return s.abortRowGone(ctx, bk, AbortInventory, fmt.Errorf("sweeper: re-check candidates: %w", err), nil)
	}
	if len(candidates) > rg.MaxPerPass {
		return s.abortRowGone(ctx, bk, AbortMaxPerPass, nil, map[string]any{
			"candidates": len(candidates), "owned": len(live), "max_per_pass": rg.MaxPerPass,
		})
	}
	if float64(len(candidates)) > rg.MaxFraction*float64(len(live)) {
		return s.abortRowGone(ctx, bk, AbortMaxFraction, nil, map[string]any{
			"candidates": len(candidates), "owned": len(live), "max_fraction": rg.MaxFraction,
		})
	}

	// Count consecutive passes; an instance that stopped being a candidate
	// (or vanished) starts again from zero.
	orphans := make(map[string]orphan, len(candidates))
	var confirmed []candidate
	for _, c := range candidates {
		o := s.orphans[c.ID]
		o.passes++
		orphans[c.ID] = o
		if o.passes == 1 {
			s.emit(events.TypeRowGoneDetected, c.Tags[rg.ResourceTag], s.instancePayload(c, now, map[string]any{"min_age": rg.MinAge.String()}))
			s.cfg.log.LogAttrs(bk, slog.LevelWarn, "sweeper: owned instance no row explains",
				slog.String("instance_id", c.ID), slog.String("resource_id", c.Tags[rg.ResourceTag]),
				slog.String("reason", c.reason), slog.Duration("age", now.Sub(c.LaunchedAt)))
		}
		if o.passes >= rg.ConfirmPasses && !now.Before(o.next) {
			confirmed = append(confirmed, c)
		}
	}
	s.orphans = orphans
	res.seen = len(candidates)
	if len(confirmed) == 0 {
		return res
	}

	if rg.DryRun || s.cfg.dryRun {
		for _, c := range confirmed {
			res.dryRun++
			s.emit(events.TypeDryRun, c.Tags[rg.ResourceTag], s.instancePayload(c, now, map[string]any{"passes": orphans[c.ID].passes, "action": "terminate"}))
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: dry run: would terminate",
				slog.String("instance_id", c.ID), slog.String("resource_id", c.Tags[rg.ResourceTag]), slog.String("reason", c.reason))
		}
		return res
	}

	ids := make([]string, len(confirmed))
	for i, c := range confirmed {
		ids[i] = c.ID
	}
	results := teardown.StopAll(ctx, s.stopper, ids, s.retry...)
	for _, c := range confirmed {
		rid, o := c.Tags[rg.ResourceTag], orphans[c.ID]
		err := results[c.ID]
		// Pending: terminated, its dependents not yet freed; with no row
		// to keep them, the dependents step reaps them once they are.
		if err == nil || errors.Is(err, teardown.ErrGone) || teardown.IsPending(err) {
			res.terminated++
			delete(orphans, c.ID)
			s.emit(events.TypeRowGoneTerminated, rid, s.instancePayload(c, now, map[string]any{"passes": o.passes}))
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: terminated row-gone instance",
				slog.String("instance_id", c.ID), slog.String("resource_id", rid), slog.String("reason", c.reason))
			continue
		}
		if cutShort(ctx, err) {
			continue
		}
		// The same per-instance backoff as a row's, kept in memory and
		// timed by the store's clock: a protected orphan is tried once an
		// hour, not every pass.
		permanent := teardown.IsPermanent(err)
		delay := s.rowDelay(o.failures, permanent)
		o.next = now.Add(delay)
		o.failures++
		orphans[c.ID] = o
		code := errorCode(err)
		s.metrics.failed(bk, code, permanent)
		s.emit(events.TypeReapFailed, rid, s.instancePayload(c, now, map[string]any{
			"row_gone": true, "error": errText(err), "error_code": code, "permanent": permanent,
			"attempts": o.failures, "retry_in": delay.String(),
		}))
		s.cfg.log.LogAttrs(bk, slog.LevelWarn, "sweeper: row-gone instance not terminated",
			slog.String("instance_id", c.ID), slog.String("resource_id", rid), slog.String("error_code", code),
			slog.Bool("permanent", permanent), slog.Duration("retry_in", delay), slog.Any("error", err))
	}
	return res
}

// recheck looks the candidates up again, by id when the inventory is a
// [teardown.Describer] and by listing it again otherwise, and keeps those
// still live and in the state they were listed in (or gone from pending to
// running): one shutting down, terminated, stopping or no longer listed is
// a delete in flight, not an orphan.
func (s *Sweeper) recheck(ctx context.Context, cands []candidate) ([]candidate, error) {
	if len(cands) == 0 {
		return cands, nil
	}
	var (
		now []teardown.Instance
		err error
	)
	if d, ok := s.cfg.inventory.(teardown.Describer); ok {
		ids := make([]string, len(cands))
		for i, c := range cands {
			ids[i] = c.ID
		}
		now, err = d.Describe(ctx, ids)
	} else {
		now, err = s.cfg.inventory.Owned(ctx)
	}
	if err != nil {
		return nil, err
	}
	state := make(map[string]string, len(now))
	for _, in := range now {
		state[in.ID] = in.State
	}
	return slices.DeleteFunc(cands, func(c candidate) bool {
		st, ok := state[c.ID]
		return !ok || st != c.State && !(c.State == "pending" && st == "running")
	}), nil
}

// abortRowGone records that the row-gone step terminated nothing, and why.
// Confirmation streaks start again: a pass that could not look did not see.
func (s *Sweeper) abortRowGone(ctx, bk context.Context, reason string, err error, detail map[string]any) rowGoneResult {
	clear(s.orphans)
	// The caller ending the pass is routine; the pass running out of time
	// because the inventory or store hung is a finding.
	if err != nil && ctx.Err() != nil && !errors.Is(context.Cause(ctx), errPassTimeout) {
		reason = AbortCanceled
	}
	s.metrics.aborted(bk, reason)
	attrs := []slog.Attr{slog.String("reason", reason)}
	if err != nil {
		attrs = append(attrs, slog.Any("error", err))
	}
	if reason == AbortCanceled {
		// A pass cut off by shutdown or a lost lease is routine, not a
		// finding for the ledger.
		s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: row-gone step cut short", attrs...)
		return rowGoneResult{aborted: reason, err: err}
	}
	payload := map[string]any{"reason": reason}
	maps.Copy(payload, detail)
	if err != nil {
		payload["error"] = errText(err)
	}
	s.emit(events.TypeSweepAborted, "", payload)
	s.cfg.log.LogAttrs(bk, slog.LevelError, "sweeper: row-gone step terminated nothing", attrs...)
	return rowGoneResult{aborted: reason, err: err}
}

// instancePayload is the payload of an event about candidate c, with its
// age by the store's clock.
func (s *Sweeper) instancePayload(c candidate, now time.Time, extra map[string]any) map[string]any {
	p := map[string]any{
		"instance_id": c.ID,
		"resource_id": c.Tags[s.cfg.guard.ResourceTag],
		"state":       c.State,
		"reason":      c.reason,
		"launched_at": c.LaunchedAt.UTC().Format(time.RFC3339),
		"age":         now.Sub(c.LaunchedAt).Round(time.Second).String(),
	}
	maps.Copy(p, extra)
	return p
}

// dedupe returns ids sorted, without repeats.
func dedupe(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}
