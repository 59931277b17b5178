package store

// Option configures NewPgx and NewSQL.
type Option func(*config)

type config struct {
	schema string // library tables' schema; "" = the connection's current schema
	chunk  int    // ids per Known statement
}

func defaults() config {
	// 5,000 ids keep one statement's array parameter well under a
	// megabyte while a typical fleet needs a single round trip.
	return config{chunk: 5000}
}

// WithSchema puts the library's own tables (leakless_attempts,
// leakless_leases) in the named schema, which Migrate creates if it is
// missing. Without it they are created unqualified, in the connection's
// current schema (the first one on its search_path). The host's table is
// wherever [Table].Name says.
func WithSchema(name string) Option {
	return func(c *config) { c.schema = name }
}
