package store

import (
	"fmt"
	"time"
)

// DefaultRedriveGrace is [WithRedriveGrace]'s default.
const DefaultRedriveGrace = 2 * time.Minute

// DefaultRescanInterval is [WithRescanInterval]'s default.
const DefaultRescanInterval = 30 * time.Second

// Option configures NewPgx, NewSQL and NewMemory.
type Option func(*config)

type config struct {
	schema string        // library tables' schema; "" = the connection's current schema
	chunk  int           // ids per Known statement
	grace  time.Duration // how long a row RemoveTree or Stopping hands to the caller stays hidden from Pending
	rescan time.Duration // the least time between two whole walks of the pending index
}

func defaults() config {
	// 5,000 ids keep one statement's array parameter well under a
	// megabyte while a typical fleet needs a single round trip.
	//
	// Two minutes outlast a request path's own StopWithRetry with the
	// default retries; without a grace the sweeper re-stopped most
	// instances a delete was already stopping (122 of 198 reaped events
	// were duplicate stops).
	return config{chunk: 5000, grace: DefaultRedriveGrace, rescan: DefaultRescanInterval}
}

// newConfig applies opts to the defaults and validates the result. Errors
// wrap ErrConfig.
func newConfig(opts []Option) (config, error) {
	cfg := defaults()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.chunk < 1 {
		return cfg, fmt.Errorf("%w: chunk size %d", ErrConfig, cfg.chunk)
	}
	if cfg.grace < 0 {
		return cfg, fmt.Errorf("%w: WithRedriveGrace: %v is negative", ErrConfig, cfg.grace)
	}
	if cfg.rescan < 0 {
		return cfg, fmt.Errorf("%w: WithRescanInterval: %v is negative", ErrConfig, cfg.rescan)
	}
	return cfg, nil
}

// WithSchema puts the library's own tables (leakless_attempts,
// leakless_leases) in the named schema, which Migrate creates if it is
// missing. Without it they are created unqualified, in the connection's
// current schema (the first one on its search_path). The host's table is
// wherever [Table].Name says. A [Memory] store ignores it.
func WithSchema(name string) Option {
	return func(c *config) { c.schema = name }
}

// WithRedriveGrace sets how long Pending leaves alone a row whose stop is
// already in flight: every holder [Postgres.RemoveTree] returns (the
// caller is about to stop them) and every row passed to
// [Postgres.Stopping] is due only d after the call, by the store's clock,
// or later if its backoff already says so. Without it the sweeper's next
// pass stops the same instances again, concurrently with the request that
// is stopping them. A row removed by anything the store never saw (a
// host's own UPDATE without Stopping, a crash mid-delete) is due at once.
//
// The default is two minutes; 0 turns the grace off; a negative d is a
// configuration error.
func WithRedriveGrace(d time.Duration) Option {
	return func(c *config) { c.grace = d }
}

// WithRescanInterval sets how often, at most, [Postgres.Pending] reads the
// whole pending index for rows that a host removed with its own UPDATE
// (rows RemoveTree, Stopping or Failed saw are indexed by due time and
// need no such read). Every call reads on by one page's worth of entries
// from where the last stopped; a call whose page is not full reads on to
// the end once d has passed since the last whole read. So a row removed
// behind the store's back is found within d, or sooner when there is
// little else to do, and a backlog that is mostly backing off is not read
// again on every call. The default is 30 seconds; 0 reads the whole index
// whenever a page is not full; a negative d is a configuration error. A
// [Memory] store ignores it: it always sees every row.
func WithRescanInterval(d time.Duration) Option {
	return func(c *config) { c.rescan = d }
}
