package store

import (
	"fmt"
	"time"
)

// DefaultRedriveGrace is [WithRedriveGrace]'s default.
const DefaultRedriveGrace = 2 * time.Minute

// Option configures NewPgx, NewSQL and NewMemory.
type Option func(*config)

type config struct {
	schema string        // library tables' schema; "" = the connection's current schema
	chunk  int           // ids per Known statement
	grace  time.Duration // how long a row RemoveTree or Stopping hands to the caller stays hidden from Pending
}

func defaults() config {
	// 5,000 ids keep one statement's array parameter well under a
	// megabyte while a typical fleet needs a single round trip.
	//
	// Two minutes outlast a request path's own StopWithRetry with the
	// default retries; without a grace the sweeper re-stopped most
	// instances a delete was already stopping (122 of 198 reaped events
	// were duplicate stops).
	return config{chunk: 5000, grace: DefaultRedriveGrace}
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
