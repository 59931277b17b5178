package sweeper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// RunAll runs every sweeper's [Sweeper.Run] at once, each on a goroutine
// of its own, until ctx ends, and returns once every one has returned:
// each has then cancelled its pass, written down its results and released
// its leadership, and every goroutine RunAll started has exited.
//
// It is how a replica runs one sweeper per shard: per location, each with
// the store scoped to it (store.Postgres.In), that location's stopper
// (awsec2.Router.At) and the shard's lease (store.Shards.Lease), so that
// every replica sweeps every shard it leads and the leading spreads across
// the replicas.
//
// Should a Run return before ctx ends, RunAll cancels the others and
// returns what they returned, joined. No sweepers, a nil one, or one given
// twice is an error wrapping [ErrConfig], before anything runs.
func RunAll(ctx context.Context, sweepers ...*Sweeper) error {
	if len(sweepers) == 0 {
		return fmt.Errorf("%w: RunAll: no sweepers", ErrConfig)
	}
	for i, s := range sweepers {
		if s == nil {
			return fmt.Errorf("%w: RunAll: sweeper %d is nil", ErrConfig, i)
		}
		if slices.Contains(sweepers[:i], s) {
			return fmt.Errorf("%w: RunAll: sweeper %d is given twice", ErrConfig, i)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(sweepers))
	var wg sync.WaitGroup
	for i, s := range sweepers {
		wg.Go(func() {
			defer cancel() // one returning stops them all
			errs[i] = s.Run(ctx)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
