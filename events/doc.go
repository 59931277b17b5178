// Package events records what teardown did and, above all, what it failed
// to do.
//
// An [Event] is a type, a subject (the resource it is about), a JSON
// payload and a time; a [Sink] receives it. The package provides sinks for
// tests ([Memory]), fan-out ([Multi]), failure tolerance ([BestEffort]), and
// a durable PostgreSQL sink ([Postgres], through pgx or database/sql), a
// spool that carries events across database outages ([Spool]), plus
// [Exhausted], the glue that turns [teardown.StopWithRetry] giving up into
// an event. [EmitAll] writes many events in one batch to any [BatchSink].
//
// The record that matters most is the one written when retries run out,
// and that is exactly when the request's context has usually expired. An
// INSERT made on that context is lost along with the evidence of the leak.
// So the Postgres sink writes on a context detached from the caller's
// cancellation, under its own timeout, and keeps trying within it while the
// database cannot be reached; Exhausted records the real number of attempts
// and why they stopped; [Postgres.List] reads the ledger back. An outage
// longer than the write timeout is what [Spool] is for, and a subject the
// table's column cannot hold costs only its column, never the event.
//
// Wiring, with a pgx pool:
//
//	sink, err := events.NewPgx(pool)                 // table structure_events
//	if err != nil { ... }
//	if err := sink.Migrate(ctx); err != nil { ... }  // or apply sink.Migrations() yourself, then sink.CheckSchema(ctx)
//	ledger := events.Spool(sink, events.WithSpoolLogger(logger))
//	defer ledger.Close(shutdownCtx)                  // writes what the spool still holds
//
//	ctx = events.WithResource(ctx, instanceID, workspaceID) // the ledger's subject is the row
//	err = teardown.StopWithRetry(ctx, ec2, instanceID,
//		teardown.WithOnExhausted(events.Exhausted(events.BestEffort(ledger, logger), events.TypeRetryExhausted)))
//
//	leaks, err := sink.List(ctx, events.Filter{Type: events.TypeRetryExhausted, Limit: 50})
//	more, err := sink.List(ctx, events.Filter{Type: events.TypeRetryExhausted, Limit: 50, Before: leaks[len(leaks)-1].ID})
//
// A host that already has an events table points the sink at it with
// [WithTable] and [WithSubjectColumn]; one whose subject column is a uuid
// or an integer works as well as the default text column.
//
// The sink's schema is versioned as the store's is: [Postgres.Migrate]
// applies the versions the database lacks and records them in
// leakless_migrations; [Postgres.CheckSchema] fails with
// [ErrSchemaVersion] when the database is behind or ahead of the code.
// Behind PgBouncer in transaction mode, connect pgx with
// default_query_exec_mode=simple_protocol (or exec, or cache_describe):
// its default mode's prepared statements fail there.
package events
