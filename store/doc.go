// Package store is leakless's view of the host's own table: the rows whose
// instances must be stopped, the guarded clear once they are, cascade
// removal, and the existence checks that keep live instances safe.
//
// The host keeps its table as it is — say workspaces(id, parent_id,
// status, instance_id, ...) — and names it with a [Table]. Three bugs live
// at that table's edge, and the [Store] closes each one:
//
//   - A cascade that skips rows already removed never re-stops their
//     instances when a delete is retried. [Store.RemoveTree] returns every
//     row of the tree still holding an instance, already-removed ones
//     included.
//   - A successful stop that never clears instance_id makes every deleted
//     row a candidate forever. [Store.Reaped] clears it, compare-and-set:
//     only if the row is still removed and still holds that instance, so a
//     host that changed the row meanwhile wins.
//   - With no per-row attempt state, a permanent failure loops every pass.
//     [Store.Failed] records attempts, the last error and when the row is
//     next due, and [Store.Pending] returns only due rows, never-attempted
//     ones first, then the one due longest.
//
// A delete the request path is already carrying out is not the sweeper's
// to repeat: the holders RemoveTree returns, and the rows a host that
// removes with its own UPDATE passes to [Postgres.Stopping], are left out
// of Pending for a redrive grace ([WithRedriveGrace], two minutes by
// default). A row removed by anything the store never saw is due at once.
//
// # Postgres
//
// [NewPgx] (pgxpool, pgx.Conn) and [NewSQL] (any database/sql driver) share
// one implementation. The host's table is read, and written only by the
// guarded clear in Reaped and by RemoveTree. Attempt state and leader
// leases live in the library's own tables, leakless_attempts and
// leakless_leases, created in the connection's current schema unless
// [WithSchema] names one. [Postgres.Migrate] creates them (and adds the
// columns later releases need to tables an earlier one created) together
// with three partial indexes on the host's table — one holding only
// removed rows that still hold an instance, which serves Pending however
// long the table's history; one holding only live rows not yet holding an
// instance, and one of removed rows by their id's lower-cased text, which
// serve Known; [Postgres.Migrations] returns the same statements, version
// by version, for hosts that migrate with their own tools. The id column's type must then have
// an immutable text form, as text, uuid and bigint do.
//
// Ids are passed as text. The id column may be text, uuid, bigint or any
// type with a text form; a row's ResourceID is that text form. The
// instance column may be nullable or NOT NULL with an empty-string
// default; Reaped clears it to whichever the column allows. Times that
// decide anything — when a row is due, how long an instance has been
// answered NotFound, an instance's age against [Known].Now, when a lease
// expires — are the database's now(), so replicas' clocks do not matter.
//
// Each call is one statement, or for RemoveTree on a table with a parent
// column one transaction, with no session state, so the store works
// behind a transaction pooler such as PgBouncer, on one condition: pgx's
// default exec mode prepares each statement on one server connection and
// runs it on another, and fails there. Set default_query_exec_mode to
// simple_protocol (or exec, or cache_describe) in the connection string,
// or run PgBouncer 1.21 or later with max_prepared_statements above 0.
// A test runs every call through a real PgBouncer in transaction mode.
//
// # Migrations
//
// The schema comes in numbered versions, embedded SQL files applied by
// [Postgres.Migrate] and recorded in leakless_migrations for each host
// table. A host that applies migrations with its own tool takes
// [Postgres.Migrations], whose SQL records each version too, and calls
// [Postgres.CheckSchema] at start-up: it fails with [ErrSchemaVersion]
// when the database is behind or ahead of the code.
//
// # Operators
//
// [Postgres.Stats] reports the backlog (pending rows, the oldest one's
// age, permanent failures, acknowledged leaks) and [Postgres.Forget]
// acknowledges a leak an operator has dealt with, so it is never retried
// again. [Memory] has both.
//
//	pool, _ := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	st, err := store.NewPgx(pool, store.Table{
//		Name: "workspaces", ID: "id", Parent: "parent_id",
//		Status: "status", InstanceID: "instance_id", Removed: "removed",
//	})
//	if err != nil { ... }                       // bad Table: wraps store.ErrConfig
//	if err := st.Migrate(ctx); err != nil { ... }
//
//	// The host's DELETE handler: removal is durable before any stop is tried,
//	// and a retried DELETE re-drives every instance still held.
//	held, err := st.RemoveTree(ctx, id)
//
// # Large backlogs
//
// A sweep pass costs O(page), not O(backlog). Pending reads due rows off
// two partial indexes on leakless_attempts, by due time, so rows backing
// off are never read; rows a host removed with its own UPDATE have no
// record until their first attempt and are found by a walk of the pending
// index that resumes where the last call stopped ([WithRescanInterval]).
// [BatchStore.ReapedAll] and [BatchStore.FailedAll] record a page in one
// statement each; the sweeper uses them when the store has them.
//
// # Locations
//
// A host whose rows live in several regions or accounts names the column
// that says where in [Table].Location; [Postgres.In] (or [Memory.In])
// returns a store whose Pending sees one location's rows, for a sweeper
// per location, each with its own EC2 client and limiter, since EC2's
// request budgets are per account and region.
//
//	east, err := st.In("us-east-1")
//
// # Leader lease
//
// [Postgres.Lease] returns a holder of a named lease row; its Lead and
// Release satisfy the sweeper's Leader, so one replica sweeps at a time.
// It needs no session advisory lock, so it works behind a transaction
// pooler.
//
// [Postgres.Shards] is one replica's place in a group of such leases, one
// per shard (a location, with [Postgres.In]): every replica runs a sweeper
// per shard, each led by [Shards.Lease] of its shard, and the leading
// spreads so that no replica leads more than its share of the shards
// among the live replicas, by the database's clock.
//
// # Memory
//
// [NewMemory] returns a [Memory] with the same semantics, for examples and
// the host's own unit tests; [Memory.Put] and [Memory.Delete] edit its
// table as the host's code would edit the real one.
package store
