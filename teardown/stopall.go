package teardown

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errNoResult stands in for an id a BatchStopper left out of its result: not
// knowing whether it stopped is a reason to send it again, never success.
var errNoResult = errors.New("teardown: batch stopper returned no result for the id")

// StopAll stops every instance in ids and returns one entry per distinct id:
// nil when it is stopped or gone, otherwise what [StopWithRetry] would have
// returned for it. A duplicated id is stopped once.
//
// With a plain [Stopper], each id runs its own [StopWithRetry] loop, at most
// [WithConcurrency] of them at once. With a [BatchStopper], ids go out in
// batches of [WithBatchSize] (at most WithConcurrency batches at once), and
// the loop runs in rounds: each round after the first re-sends only the ids
// that failed retryably, after one backoff sleep shared by all of them. Ids
// that succeed, are gone, or fail permanently are never sent again. Attempts,
// deadline, attempt timeout and hooks follow StopWithRetry's rules per id, so
// an id's Attempts counts the batches it was part of.
//
// Hooks may be called from several goroutines at once. Every goroutine
// StopAll starts has exited when it returns.
func StopAll(ctx context.Context, s Stopper, ids []string, opts ...Option) map[string]error {
	c := newConfig(opts)
	results := make(map[string]error, len(ids))
	todo := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, seen := results[id]; seen {
			continue
		}
		results[id] = nil
		if id == "" {
			results[id] = errEmptyID
			continue
		}
		todo = append(todo, id)
	}
	if err := c.check(s); err != nil {
		for id := range results {
			results[id] = err
		}
		return results
	}

	errs := make([]error, len(todo))
	if bs, ok := s.(BatchStopper); ok {
		c.stopBatches(ctx, bs, todo, errs)
	} else {
		parallel(c.concurrency, len(todo), func(i int) {
			errs[i] = c.stop(ctx, s, todo[i])
		})
	}
	for i, id := range todo {
		results[id] = errs[i]
	}
	return results
}

// stopBatches is the retry loop for a BatchStopper: the loop of
// [config.stop], run over a shrinking set of ids. It stores each id's result
// in errs.
func (c *config) stopBatches(ctx context.Context, s BatchStopper, ids []string, errs []error) {
	p := c.pacer()
	defer p.stop()
	var (
		pending = make([]int, len(ids)) // indexes into ids still to be sent
		last    = make([]error, len(ids))
		cut     = make([]bool, len(ids))
	)
	for i := range pending {
		pending[i] = i
	}
	giveUp := func(attempts int, cause error) {
		for _, i := range pending {
			errs[i] = c.giveUp(ctx, ids[i], attempts, cause, last[i])
		}
	}
	for round := 1; ; round++ {
		if ctx.Err() != nil {
			giveUp(round-1, contextCause(ctx))
			return
		}
		c.sendRound(ctx, s, ids, pending, last, cut)

		retry := pending[:0]
		for _, i := range pending {
			switch done, cause := c.classify(ctx, last[i], cut[i]); {
			case done:
				errs[i] = nil
			case cause != nil:
				errs[i] = c.giveUp(ctx, ids[i], round, cause, last[i])
			default:
				retry = append(retry, i)
			}
		}
		pending = retry
		if len(pending) == 0 {
			return
		}
		cause := p.wait(ctx, round, func(d time.Duration) {
			for _, i := range pending {
				c.retrying(ids[i], round, last[i], d)
			}
		})
		if cause != nil {
			giveUp(round, cause)
			return
		}
	}
}

// sendRound sends the pending ids in batches and records, per id, the error
// the batch reported and whether the attempt timeout cut its call off.
func (c *config) sendRound(ctx context.Context, s BatchStopper, ids []string, pending []int, last []error, cut []bool) {
	size := c.batchSize
	batches := (len(pending) + size - 1) / size
	parallel(c.concurrency, batches, func(k int) {
		chunk := pending[k*size : min((k+1)*size, len(pending))]
		batch := make([]string, len(chunk))
		for j, i := range chunk {
			batch[j] = ids[i]
		}
		actx, cancel := c.attemptContext(ctx)
		res := s.StopBatch(actx, batch)
		wasCut := actx.Err() != nil
		cancel()
		for _, i := range chunk {
			err, ok := res[ids[i]]
			if !ok {
				err = errNoResult
			}
			last[i], cut[i] = err, wasCut
		}
	})
}

// parallel calls f(0) … f(n-1) on at most limit goroutines and returns when
// every call has returned.
func parallel(limit, n int, f func(int)) {
	if n == 1 {
		f(0)
		return
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(limit, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}
