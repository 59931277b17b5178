// Package workspaces is a small workspace API wired the way leakless is
// meant to be used: each workspace is a row in the host's own table, backed
// by one EC2 instance, and deleting a workspace stops every instance its
// tree still holds.
//
// It is the handler behind examples/httpserver, and the demo and tests
// mount the same handler, so what they show is what the server does.
//
// # The table
//
//	workspaces(id text primary key, parent_id text, status text, instance_id text, created_at timestamptz)
//
// A row is "provisioning" from its insert until its instance is recorded,
// then "running", then "removed". [Schema] is the PostgreSQL DDL; [Table]
// describes it to the store and sweeper packages; [NewMemory] is the same
// table in memory.
//
// # Creating
//
// POST /workspaces writes the row first, then launches the instance with
// the deployment's owner tags, the row's id under the resource-id tag and
// the row's id as the EC2 ClientToken (so the SDK's retries of the launch
// cannot start a second instance), then records the instance id on the
// row. Because the row exists before the instance, the sweeper's row-gone
// reaping can always tell an instance still being provisioned from one
// whose row is gone.
//
// # Deleting
//
// DELETE /workspaces/{id} calls store.RemoveTree, which marks the tree
// removed and returns every row in it still holding an instance (rows an
// earlier DELETE removed included), stops those instances with
// teardown.StopAll, emitting a durable events.TypeRetryExhausted event for
// each one it gives up on, and clears each stopped row with store.Reaped.
// It answers 204 when nothing is held any more, and otherwise 500 with a
// [DeleteFailure] naming what is still held: repeating the DELETE re-drives
// exactly those, and the sweeper keeps trying on its own.
//
// # Wiring
//
//	mem := workspaces.NewMemory()
//	sink := workspaces.NewMemoryEvents()
//	h, err := workspaces.New(workspaces.Config{
//		Store: mem, Rows: mem, Events: sink, Ledger: sink,
//		EC2: ec2Client, Stopper: awsec2Client,
//		Owner: map[string]string{"leakless:owner": "my-deployment"},
//	})
//
// On PostgreSQL, Store is a *store.Postgres over [Table], Rows is
// [NewPostgres] and Events and Ledger are an *events.Postgres.
package workspaces
