// Package quickstart is the README's quickstart, kept compiling and tested:
// an existing workspace service whose DELETE handler used to call
// TerminateInstances once and log the error, changed to use leakless.
//
// Three things change. The handler stops the instance with
// teardown.StopWithRetry, which records a durable event in PostgreSQL when
// it gives up, and clears the row's instance_id only once the instance is
// stopped. A sweeper, run in a worker, re-drives every removed row that
// still holds an instance and reaps instances whose row is gone. And the
// instances are launched with an owner tag (and the row id under the
// resource-id tag), so that the sweeper lists only this deployment's.
//
// Deleting a tree of rows works the same way with store.RemoveTree and
// teardown.StopAll; examples/httpserver shows it.
package quickstart
