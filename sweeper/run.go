package sweeper

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// DefaultLeaseRenewal is how often [Sweeper.Run] calls Leader.Lead when the
// Leader does not report its time to live. A Leader with a method
// TTL() time.Duration is renewed every third of it instead, so that a
// replica whose renewal fails stops sweeping before its lease can expire.
const DefaultLeaseRenewal = 5 * time.Second

// releaseTimeout bounds the Release call Run makes on its way out.
const releaseTimeout = 5 * time.Second

// errLostLease is the cancellation cause of a pass whose replica stopped
// leading.
var errLostLease = errors.New("sweeper: leadership lost")

// Run sweeps until ctx ends: a pass at once, then one every interval (with
// jitter) after the previous pass ended, or at once when that pass ran out
// of time with rows still due. With [WithLeader] only the leading
// replica sweeps; the lease is renewed throughout, and the moment a renewal
// fails or reports another leader the pass in flight is cancelled. A pass's
// errors are logged, never returned: Run keeps going.
//
// When ctx ends Run cancels the pass in flight, waits for it to write down
// its results (never past the pass's own deadline), releases leadership on
// a fresh context of its own (at most 5s), and returns nil. Every goroutine
// it started has exited by then.
func (s *Sweeper) Run(ctx context.Context) error {
	if s.cfg.leader == nil {
		s.runAlone(ctx)
		return nil
	}
	s.runLed(ctx)
	return nil
}

// runAlone is Run for a sweeper that sweeps without asking anyone.
func (s *Sweeper) runAlone(ctx context.Context) {
	s.metrics.leading(ctx, true)
	defer s.metrics.leading(context.WithoutCancel(ctx), false)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		_, _ = s.SweepOnce(ctx) // the pass has logged what went wrong
		timer.Reset(s.nextPass())
	}
}

// runLed is Run with a Leader. The loop owns leadership; passes run on a
// goroutine of their own so that renewals keep their rhythm during a long
// pass and can cancel it.
func (s *Sweeper) runLed(ctx context.Context) {
	// A follower reports 0 from the start, so sum(leader) == 1 tells a
	// healthy fleet from one with a replica that never started.
	s.metrics.leading(ctx, false)
	renew := s.renewEvery()
	var (
		leading   bool
		pass      *inflight // non-nil while a pass runs
		backlogAt time.Time // when this replica last read the backlog as a follower
	)
	s.followBacklog(ctx, &backlogAt)
	stopPass := func(cause error) {
		if pass != nil {
			pass.cancel(cause)
			<-pass.done
			pass = nil
		}
	}
	renewT := time.NewTimer(0)
	defer renewT.Stop()
	passT := time.NewTimer(time.Hour)
	passT.Stop()
	defer passT.Stop()

	defer func() {
		stopPass(context.Cause(ctx))
		if !leading {
			return
		}
		s.metrics.leading(context.WithoutCancel(ctx), false)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(releaseTimeout, renew))
		defer cancel()
		if err := s.cfg.leader.Release(rctx); err != nil {
			s.cfg.log.LogAttrs(rctx, slog.LevelWarn, "sweeper: release leadership", slog.Any("error", err))
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return

		case <-renewT.C:
			lctx, cancel := context.WithTimeout(ctx, renew)
			ok, err := s.cfg.leader.Lead(lctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			switch {
			case (err != nil || !ok) && leading:
				// Stop at once: another replica may take over as soon as
				// the lease expires, and two sweepers must never overlap.
				stopPass(errLostLease)
				passT.Stop()
				leading = false
				s.metrics.leading(ctx, false)
				s.cfg.log.LogAttrs(ctx, slog.LevelWarn, "sweeper: stopped leading", slog.Any("error", err))
			case err != nil:
				s.cfg.log.LogAttrs(ctx, slog.LevelWarn, "sweeper: leadership check failed", slog.Any("error", err))
			case ok && !leading:
				leading = true
				s.metrics.leading(ctx, true)
				s.cfg.log.LogAttrs(ctx, slog.LevelInfo, "sweeper: leading")
				passT.Reset(0)
			}
			if !leading {
				s.followBacklog(ctx, &backlogAt)
			}
			renewT.Reset(renew)

		case <-passT.C:
			if leading && pass == nil {
				pass = s.startPass(ctx)
			}

		case <-pass.doneChan():
			pass.cancel(nil)
			pass = nil
			passT.Reset(s.nextPass())
		}
	}
}

// inflight is a pass running on its own goroutine.
type inflight struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the pass has returned
}

// startPass starts a pass that ends early if ctx ends or cancel is called.
func (s *Sweeper) startPass(ctx context.Context) *inflight {
	pctx, cancel := context.WithCancelCause(ctx)
	p := &inflight{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_, _ = s.SweepOnce(pctx) // the pass has logged what went wrong
	}()
	return p
}

// doneChan is p's done channel, or nil (never ready) when no pass runs.
func (p *inflight) doneChan() <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.done
}

// renewEvery is how often the lease is renewed: a third of its time to live
// when the Leader reports it.
func (s *Sweeper) renewEvery() time.Duration {
	if t, ok := s.cfg.leader.(interface{ TTL() time.Duration }); ok && t.TTL() > 0 {
		return t.TTL() / 3
	}
	return DefaultLeaseRenewal
}

// nextPass is how long to wait before the next pass: none when the last
// one ran out of time with rows still due (a backlog drains pass after
// pass, paced by the stopper's own rate limits), else the interval.
func (s *Sweeper) nextPass() time.Duration {
	if s.more.Load() {
		return 0
	}
	return s.jittered()
}

// jittered is the interval moved by up to a tenth either way, so replicas
// started together do not sweep (and call the cloud) in lockstep.
func (s *Sweeper) jittered() time.Duration {
	d := s.cfg.interval
	spread := int64(d / 5)
	if spread <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(spread+1))
}
