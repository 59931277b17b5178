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
	"github.com/leakless/leakless/teardown"
)

// Defaults for [RowGone]'s zero fields.
const (
	DefaultMinAge        = 10 * time.Minute
	DefaultConfirmPasses = 2
	DefaultMaxPerPass    = 50
	DefaultMaxFraction   = 0.5
	DefaultResourceTag   = "leakless:resource-id"
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

// RowGone configures row-gone reaping: terminating owned instances that no
// row explains, the leak a crash between launch and insert, a deleted row,
// or a restart that replaced an instance without stopping the old one
// leaves behind.
//
// An owned instance is in use, and never touched, if some row holds it (in
// any status) or it carries the resource-id tag of a live row that holds no
// instance yet. Every other owned instance is a candidate. A candidate is
// terminated only when all of these hold: it is older than MinAge; it was a
// candidate in ConfirmPasses consecutive passes; the pass listed the
// inventory and read the store without error; and the pass's candidates are
// no more than MaxPerPass and no more than MaxFraction of all owned
// instances. When a check fails the step terminates nothing and emits
// [events.TypeSweepAborted]: an empty or unreachable owner list must never
// look like "everything is orphaned".
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
	// candidates. Default 10m.
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
	seen, terminated int
	aborted          string
	err              error
}

// reapRowGone runs the row-gone step of a pass. It terminates instances
// only after every safety check has passed; any doubt terminates nothing.
func (s *Sweeper) reapRowGone(ctx, bk context.Context) rowGoneResult {
	rg := s.cfg.rowGone

	// The inventory first, the store second: see RowGone.
	owned, err := s.cfg.inventory.Owned(ctx)
	if err != nil {
		return s.abortRowGone(ctx, bk, AbortInventory, fmt.Errorf("sweeper: list owned instances: %w", err), nil)
	}
	live := owned[:0:0]
	listed := make(map[string]bool, len(owned))
	for _, in := range owned {
		// An inventory that pages may list an instance twice; counting it
		// twice would skew the breakers and the report.
		if in.ID == "" || in.State == "shutting-down" || in.State == "terminated" || listed[in.ID] {
			continue
		}
		listed[in.ID] = true
		live = append(live, in)
	}
	if len(live) == 0 {
		clear(s.orphans)
		return rowGoneResult{}
	}

	rids := make([]string, 0, len(live))
	iids := make([]string, 0, len(live))
	for _, in := range live {
		iids = append(iids, in.ID)
		if rid := in.Tags[rg.ResourceTag]; rid != "" {
			rids = append(rids, rid)
		}
	}
	known, err := s.store.Known(ctx, dedupe(rids), iids)
	if err != nil {
		return s.abortRowGone(ctx, bk, AbortStore, fmt.Errorf("sweeper: read known rows: %w", err), nil)
	}

	now := s.cfg.now()
	var candidates []teardown.Instance
	for _, in := range live {
		rid := in.Tags[rg.ResourceTag]
		inUse := known.Held[in.ID] || (rid != "" && known.Provisioning[rid])
		if inUse || in.LaunchedAt.IsZero() || now.Sub(in.LaunchedAt) < rg.MinAge {
			continue
		}
		candidates = append(candidates, in)
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
	var confirmed []teardown.Instance
	for _, in := range candidates {
		o := s.orphans[in.ID]
		o.passes++
		orphans[in.ID] = o
		if o.passes == 1 {
			s.emit(bk, events.TypeRowGoneDetected, in.Tags[rg.ResourceTag], instancePayload(in, rg, map[string]any{"min_age": rg.MinAge.String()}))
			s.cfg.log.LogAttrs(bk, slog.LevelWarn, "sweeper: owned instance has no row",
				slog.String("instance_id", in.ID), slog.String("resource_id", in.Tags[rg.ResourceTag]), slog.Duration("age", now.Sub(in.LaunchedAt)))
		}
		if o.passes >= rg.ConfirmPasses && !now.Before(o.next) {
			confirmed = append(confirmed, in)
		}
	}
	s.orphans = orphans
	res := rowGoneResult{seen: len(candidates)}
	if len(confirmed) == 0 {
		return res
	}

	if rg.DryRun {
		for _, in := range confirmed {
			s.emit(bk, events.TypeDryRun, in.Tags[rg.ResourceTag], instancePayload(in, rg, map[string]any{"passes": orphans[in.ID].passes}))
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: dry run: would terminate",
				slog.String("instance_id", in.ID), slog.String("resource_id", in.Tags[rg.ResourceTag]))
		}
		return res
	}

	ids := make([]string, len(confirmed))
	for i, in := range confirmed {
		ids[i] = in.ID
	}
	results := teardown.StopAll(ctx, s.stopper, ids, s.retry...)
	for _, in := range confirmed {
		rid, o := in.Tags[rg.ResourceTag], orphans[in.ID]
		err := results[in.ID]
		if err == nil || errors.Is(err, teardown.ErrGone) {
			res.terminated++
			delete(orphans, in.ID)
			s.emit(bk, events.TypeRowGoneTerminated, rid, instancePayload(in, rg, map[string]any{"passes": o.passes}))
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: terminated row-gone instance", slog.String("instance_id", in.ID), slog.String("resource_id", rid))
			continue
		}
		if cutShort(ctx, err) {
			continue
		}
		// The same per-instance backoff as a row's, kept in memory: a
		// protected orphan is tried once an hour, not every pass.
		permanent := teardown.IsPermanent(err)
		o.next = now.Add(s.rowDelay(o.failures, permanent))
		o.failures++
		orphans[in.ID] = o
		code := errorCode(err)
		s.metrics.failed(bk, code, permanent)
		s.emit(bk, events.TypeReapFailed, rid, instancePayload(in, rg, map[string]any{
			"row_gone": true, "error": err.Error(), "error_code": code, "permanent": permanent,
			"attempts": o.failures, "next_attempt": o.next.UTC().Format(time.RFC3339),
		}))
		s.cfg.log.LogAttrs(bk, slog.LevelWarn, "sweeper: row-gone instance not terminated",
			slog.String("instance_id", in.ID), slog.String("resource_id", rid), slog.String("error_code", code),
			slog.Bool("permanent", permanent), slog.Time("next_attempt", o.next), slog.Any("error", err))
	}
	return res
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
		payload["error"] = err.Error()
	}
	s.emit(bk, events.TypeSweepAborted, "", payload)
	s.cfg.log.LogAttrs(bk, slog.LevelError, "sweeper: row-gone step terminated nothing", attrs...)
	return rowGoneResult{aborted: reason, err: err}
}

func instancePayload(in teardown.Instance, rg *RowGone, extra map[string]any) map[string]any {
	p := map[string]any{
		"instance_id": in.ID,
		"resource_id": in.Tags[rg.ResourceTag],
		"state":       in.State,
		"launched_at": in.LaunchedAt.UTC().Format(time.RFC3339),
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
