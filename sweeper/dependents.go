package sweeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/census"
	"github.com/leakless/leakless/teardown"
)

// DependentInventory lists and reaps what instances leave behind: the
// volumes, network interfaces, Elastic IPs and spot requests that outlive
// them. An awsec2.Client is one.
type DependentInventory interface {
	// OwnedDependents lists the dependents carrying the deployment's
	// ownership tags (key and value), marking InUse those something uses
	// (attached volumes and interfaces, associated Elastic IPs, spot
	// requests whose instance is live): only the others are reaped, and
	// all of them count for the share breaker. Like Inventory.Owned, it
	// must return an error rather than an unfiltered list.
	OwnedDependents(ctx context.Context) ([]teardown.Dependent, error)
	// ReapDependents deletes, releases or cancels each of ds and returns
	// one result per id: nil (or an error wrapping teardown.ErrGone) when
	// done, otherwise classified as a stop's errors are.
	ReapDependents(ctx context.Context, ds []teardown.Dependent) map[string]error
}

// Dependents configures the dependents step (see [WithDependents]). Zero
// fields take RowGone's defaults.
type Dependents struct {
	// MinAge: a dependent younger than this is never reaped, by its
	// creation time or, for kinds EC2 gives none (Elastic IPs,
	// interfaces), since the sweeper first saw it. Default 10m.
	MinAge time.Duration
	// ConfirmPasses: reaped only after being a candidate in this many
	// consecutive passes. Default 2.
	ConfirmPasses int
	// MaxPerPass: more candidates than this in a pass reaps none. Default 50.
	MaxPerPass int
	// MaxFraction: candidates making up more than this share of the owned
	// dependents listed reaps none. Default 0.5; 1 turns it off.
	MaxFraction float64
	// DryRun emits events.TypeDependentDryRun for each confirmed candidate
	// and reaps nothing.
	DryRun bool
	// ResourceTag is the tag key holding the row's id. Default
	// "leakless:resource-id".
	ResourceTag string
	// KeepTag keeps a dependent out of every reaping, whatever its value.
	// Default "leakless:keep".
	KeepTag string
}

// The "reason" of a dependent candidate.
const (
	// ReasonDependentRowRemoved: its resource-id tag names a removed row.
	ReasonDependentRowRemoved = "row_removed"
	// ReasonDependentRowMissing: its resource-id tag names neither a
	// removed row nor a live one still provisioning, and no live owned
	// instance carries it.
	ReasonDependentRowMissing = "row_missing"
)

// The dependents step's instruments, as exported through
// WithMeterProvider, each with a kind attribute (volume, interface,
// address, spot_request).
const (
	MetricDependentsSeen    = "leakless.sweeper.dependents.seen"    // gauge: candidates in the last pass
	MetricDependentsReaped  = "leakless.sweeper.dependents.reaped"  // counter: dependents reaped
	MetricDependentsFailed  = "leakless.sweeper.dependents.failed"  // counter: reaps that failed, by kind and permanent
	MetricDependentsAborted = "leakless.sweeper.dependents.aborted" // counter: steps that reaped nothing, by reason (no kind)
)

// WithDependents turns on the dependents step: each pass reaps the owned
// dependents inv lists (available volumes and interfaces, unassociated
// Elastic IPs, open or active spot requests with no live instance) whose
// resource-id tag names a removed row, or a missing one: neither removed
// nor provisioning, with no live owned instance carrying the id. A
// dependent without the tag is never reaped. The guards are row-gone's:
// the inventory is listed (dependents, then instances) before the store
// is read; MinAge; ConfirmPasses; the breakers by count and share; the
// keep tag; dry run (cfg.DryRun or [WithDryRun]); and any listing or
// store error reaps nothing. The owned instances come from the
// [WithInventory] or [WithRowGone] inventory, or from inv when it is also
// a teardown.Inventory; without one, only removed rows' dependents are
// reaped.
//
// Events: [events.TypeDependentDetected], [events.TypeDependentReaped],
// [events.TypeDependentReapFailed], [events.TypeDependentsAborted],
// [events.TypeDependentDryRun]; metrics by kind (MetricDependents*).
func WithDependents(inv DependentInventory, cfg Dependents) Option {
	return func(c *config) {
		if inv == nil {
			c.invalid("dependent inventory is nil")
			return
		}
		rg, err := RowGone{
			MinAge: cfg.MinAge, ConfirmPasses: cfg.ConfirmPasses, MaxPerPass: cfg.MaxPerPass,
			MaxFraction: cfg.MaxFraction, ResourceTag: cfg.ResourceTag, KeepTag: cfg.KeepTag,
		}.withDefaults()
		if err != nil {
			c.invalid("dependents: %v", err)
			return
		}
		cfg.MinAge, cfg.ConfirmPasses, cfg.MaxPerPass, cfg.MaxFraction = rg.MinAge, rg.ConfirmPasses, rg.MaxPerPass, rg.MaxFraction
		cfg.ResourceTag, cfg.KeepTag = rg.ResourceTag, rg.KeepTag
		c.dependents = &dependentSweep{inv: inv, cfg: cfg, seen: map[string]seenDependent{}}
	}
}

// dependentSweep is the dependents step's configuration and what it
// remembers between passes (used under Sweeper.mu: passes never overlap).
type dependentSweep struct {
	inv  DependentInventory
	cfg  Dependents
	seen map[string]seenDependent // candidates of the last pass, by kind/id

	once    sync.Once
	metrics *dependentMetrics
	merr    error
}

type seenDependent struct {
	first    time.Time // the store's clock when first seen unexplained
	detected bool      // its detection was reported
	passes   int
	failures int
	next     time.Time
}

type dependentCandidate struct {
	teardown.Dependent
	reason string
	age    time.Duration
}

func depKey(d teardown.Dependent) string { return d.Kind + "/" + d.ID }

// reapDependents runs the dependents step of a pass over what the pass
// listed (the dependents, and the instances when the row-gone step listed
// them; otherwise it lists them itself); any doubt reaps nothing. It
// returns the step's error, if any.
func (s *Sweeper) reapDependents(ctx, bk context.Context, pass *listing, rep *Report) error {
	ds := s.cfg.dependents
	ds.once.Do(func() { ds.metrics, ds.merr = newDependentMetrics(s.cfg.meterProvider) })
	if ds.merr != nil {
		return ds.merr
	}
	cfg := ds.cfg

	// The inventory first, the store second: see RowGone. The pass listed
	// the dependents before the instances.
	listed, err := pass.deps, pass.depsErr
	if err != nil {
		return s.abortDependents(ctx, bk, rep, AbortInventory, fmt.Errorf("sweeper: list owned dependents: %w", err), nil)
	}
	inv := s.cfg.inventory
	if inv == nil {
		inv, _ = ds.inv.(teardown.Inventory)
	}
	var liveRows map[string]bool // nil: without the instances, a missing row cannot be told from a live one
	if inv != nil && len(listed) > 0 {
		owned := pass.owned
		if !pass.ownedOK {
			if owned, err = inv.Owned(ctx); err != nil {
				return s.abortDependents(ctx, bk, rep, AbortInventory, fmt.Errorf("sweeper: list owned instances for dependents: %w", err), nil)
			}
		}
		live, _, _ := census.Live(owned, cfg.ResourceTag)
		liveRows = census.LiveRows(live, cfg.ResourceTag)
	}
	var tagged []teardown.Dependent
	var rids []string
	kept := 0
	for _, d := range listed {
		if d.InUse {
			continue
		}
		if _, keep := d.Tags[cfg.KeepTag]; keep {
			kept++
			continue
		}
		if rid := d.Tags[cfg.ResourceTag]; rid != "" {
			tagged = append(tagged, d)
			rids = append(rids, rid)
		}
	}
	if kept > 0 {
		s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: dependents kept by tag", slog.Int("kept", kept), slog.String("tag", cfg.KeepTag))
	}
	if len(tagged) == 0 {
		clear(ds.seen)
		ds.metrics.record(bk, nil)
		return nil
	}
	known, err := s.store.Known(ctx, dedupe(rids), nil)
	if err == nil && known.Now.IsZero() {
		err = errors.New("the store reported no clock (Known.Now is zero), so no dependent's age can be told")
	}
	if err != nil {
		return s.abortDependents(ctx, bk, rep, AbortStore, fmt.Errorf("sweeper: read known rows for dependents: %w", err), nil)
	}

	now := known.Now
	seen := make(map[string]seenDependent, len(tagged))
	var candidates []dependentCandidate
	for _, d := range tagged {
		rid := d.Tags[cfg.ResourceTag]
		var reason string
		switch census.DependentRow(rid, known, liveRows) {
		case census.RowRemoved:
			reason = ReasonDependentRowRemoved
		case census.RowMissing:
			reason = ReasonDependentRowMissing
		default:
			continue // its row is live, or its instance is, or it cannot be told
		}
		sd := ds.seen[depKey(d)]
		if sd.first.IsZero() {
			sd.first = now
		}
		sd.passes++
		seen[depKey(d)] = sd
		born := d.CreatedAt
		if born.IsZero() {
			born = sd.first
		}
		if age := now.Sub(born); age >= cfg.MinAge {
			candidates = append(candidates, dependentCandidate{d, reason, age})
		}
	}
	ds.seen = seen
	rep.DependentsSeen = len(candidates)
	ds.metrics.record(bk, candidates)

	if len(candidates) > cfg.MaxPerPass {
		return s.abortDependents(ctx, bk, rep, AbortMaxPerPass, nil, map[string]any{"candidates": len(candidates), "owned": len(listed), "max_per_pass": cfg.MaxPerPass})
	}
	if float64(len(candidates)) > cfg.MaxFraction*float64(len(listed)) {
		return s.abortDependents(ctx, bk, rep, AbortMaxFraction, nil, map[string]any{"candidates": len(candidates), "owned": len(listed), "max_fraction": cfg.MaxFraction})
	}

	var confirmed []dependentCandidate
	for _, c := range candidates {
		sd := seen[depKey(c.Dependent)]
		if !sd.detected {
			sd.detected = true
			seen[depKey(c.Dependent)] = sd
			s.emit(events.TypeDependentDetected, c.Tags[cfg.ResourceTag], dependentPayload(c, cfg, nil))
			s.cfg.log.LogAttrs(bk, slog.LevelWarn, "sweeper: owned dependent whose row is gone",
				slog.String("kind", c.Kind), slog.String("id", c.ID), slog.String("resource_id", c.Tags[cfg.ResourceTag]), slog.String("reason", c.reason))
		}
		if sd.passes >= cfg.ConfirmPasses && !now.Before(sd.next) {
			confirmed = append(confirmed, c)
		}
	}
	if len(confirmed) == 0 {
		return nil
	}
	if cfg.DryRun || s.cfg.dryRun {
		for _, c := range confirmed {
			s.emit(events.TypeDependentDryRun, c.Tags[cfg.ResourceTag], dependentPayload(c, cfg, map[string]any{"action": "reap"}))
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: dry run: would reap dependent",
				slog.String("kind", c.Kind), slog.String("id", c.ID), slog.String("reason", c.reason))
		}
		return nil
	}

	batch := make([]teardown.Dependent, len(confirmed))
	for i, c := range confirmed {
		batch[i] = c.Dependent
	}
	results := ds.inv.ReapDependents(ctx, batch)
	for _, c := range confirmed {
		key, rid := depKey(c.Dependent), c.Tags[cfg.ResourceTag]
		err, ok := results[c.ID]
		if !ok {
			err = errors.New("sweeper: the dependent inventory returned no result")
		}
		if err == nil || errors.Is(err, teardown.ErrGone) {
			delete(ds.seen, key)
			rep.DependentsReaped++
			ds.metrics.reaped(bk, c.Kind)
			s.emit(events.TypeDependentReaped, rid, dependentPayload(c, cfg, nil))
			s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: reaped dependent",
				slog.String("kind", c.Kind), slog.String("id", c.ID), slog.String("resource_id", rid), slog.String("reason", c.reason))
			continue
		}
		if cutShort(ctx, err) {
			continue
		}
		sd := ds.seen[key]
		permanent := teardown.IsPermanent(err)
		delay := s.rowDelay(sd.failures, permanent)
		sd.next, sd.failures = now.Add(delay), sd.failures+1
		ds.seen[key] = sd
		code := errorCode(err)
		ds.metrics.failed(bk, c.Kind, permanent)
		s.emit(events.TypeDependentReapFailed, rid, dependentPayload(c, cfg, map[string]any{
			"error": errText(err), "error_code": code, "permanent": permanent, "attempts": sd.failures, "retry_in": delay.String(),
		}))
		s.cfg.log.LogAttrs(bk, slog.LevelWarn, "sweeper: dependent not reaped",
			slog.String("kind", c.Kind), slog.String("id", c.ID), slog.String("error_code", code),
			slog.Bool("permanent", permanent), slog.Duration("retry_in", delay), slog.Any("error", err))
	}
	return nil
}

// abortDependents records that the dependents step reaped nothing, and
// why; confirmation streaks start again. It returns err.
func (s *Sweeper) abortDependents(ctx, bk context.Context, rep *Report, reason string, err error, detail map[string]any) error {
	ds := s.cfg.dependents
	clear(ds.seen)
	if err != nil && ctx.Err() != nil && !errors.Is(context.Cause(ctx), errPassTimeout) {
		s.cfg.log.LogAttrs(bk, slog.LevelInfo, "sweeper: dependents step cut short", slog.Any("error", err))
		return err
	}
	rep.DependentsAborted = reason
	ds.metrics.aborted(bk, reason)
	payload := map[string]any{"reason": reason}
	maps.Copy(payload, detail)
	if err != nil {
		payload["error"] = errText(err)
	}
	s.emit(events.TypeDependentsAborted, "", payload)
	s.cfg.log.LogAttrs(bk, slog.LevelError, "sweeper: dependents step reaped nothing", slog.String("reason", reason), slog.Any("error", err))
	return err
}

func dependentPayload(c dependentCandidate, cfg Dependents, extra map[string]any) map[string]any {
	p := map[string]any{
		"kind": c.Kind, "id": c.ID, "state": c.State, "resource_id": c.Tags[cfg.ResourceTag],
		"reason": c.reason, "age": c.age.Round(time.Second).String(),
	}
	maps.Copy(p, extra)
	return p
}

type dependentMetrics struct {
	seen             metric.Int64Gauge
	reapedN, failedN metric.Int64Counter
	abortedN         metric.Int64Counter
}

func newDependentMetrics(mp metric.MeterProvider) (*dependentMetrics, error) {
	m := mp.Meter(meterName)
	var out dependentMetrics
	var errs [4]error
	out.seen, errs[0] = m.Int64Gauge(MetricDependentsSeen, metric.WithDescription("Owned dependents whose row is removed or missing, in the last pass, by kind."), metric.WithUnit("{resource}"))
	out.reapedN, errs[1] = m.Int64Counter(MetricDependentsReaped, metric.WithDescription("Dependents reaped, by kind."), metric.WithUnit("{resource}"))
	out.failedN, errs[2] = m.Int64Counter(MetricDependentsFailed, metric.WithDescription("Dependent reaps that failed, by kind."), metric.WithUnit("{resource}"))
	out.abortedN, errs[3] = m.Int64Counter(MetricDependentsAborted, metric.WithDescription("Dependents steps that reaped nothing, by reason."), metric.WithUnit("{pass}"))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("sweeper: create instrument: %w", err)
	}
	return &out, nil
}

var dependentKinds = []string{teardown.DependentVolume, teardown.DependentInterface, teardown.DependentAddress, teardown.DependentSpotRequest}

func (m *dependentMetrics) record(ctx context.Context, cands []dependentCandidate) {
	n := map[string]int64{}
	for _, c := range cands {
		n[c.Kind]++
	}
	for _, k := range dependentKinds {
		m.seen.Record(ctx, n[k], metric.WithAttributes(attribute.String("kind", k)))
	}
}

func (m *dependentMetrics) reaped(ctx context.Context, kind string) {
	m.reapedN.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind)))
}

func (m *dependentMetrics) failed(ctx context.Context, kind string, permanent bool) {
	m.failedN.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind), attribute.Bool("permanent", permanent)))
}

func (m *dependentMetrics) aborted(ctx context.Context, reason string) {
	m.abortedN.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}
