// Package sweeper is the backstop that makes "no instance outlives its row"
// true even when every request-path retry has failed.
//
// A [Sweeper] embeds in the host service (or a worker beside it) and, on
// every pass:
//
//   - re-drives removed rows that still hold an instance: it pages through
//     store.Store.Pending, stops the instances with teardown.StopAll (so an
//     EC2 BatchStopper gets batches of up to 500), clears each row with
//     store.Store.Reaped, and gives each failure a per-row backoff with
//     store.Store.Failed, so a permanent error is tried once an hour rather
//     than every pass;
//
//   - given an inventory ([WithInventory]), terminates owned instances
//     whose resource-id tag names a removed row that holds nothing: the
//     instance a create launched but never recorded, whose row has since
//     been deleted;
//
//   - when [WithRowGone] is given, also reaps row-gone instances: owned
//     instances that no row explains, such as one launched by a request
//     that crashed before its insert, or one whose row has been
//     provisioning for longer than RowGone.ProvisionTimeout. This is off
//     by default. It expects the host to write its row before launching
//     and to tag each instance with the row's id (RowGone.ResourceTag) at
//     launch, so a row still provisioning protects its instance.
//
//   - given a dependents inventory ([WithDependents]), reaps the owned
//     volumes, network interfaces, Elastic IPs and spot requests that
//     outlived their instance and whose resource-id tag names a removed or
//     missing row.
//
// The inventory reapings are guarded by confirmation across passes, a
// re-check of each candidate just before counting it (a delete in flight
// is not an orphan), blast-radius breakers, and a keep tag; see [RowGone].
//
// Time is the store's: instance ages are measured against the database's
// clock at the store read, and per-row backoff is due at the database's
// now() plus the delay, so replicas whose clocks are off by hours decide
// exactly as one with a true clock would. An instance EC2 reports as not
// found is taken as gone only once that answer has held for
// [WithNotFoundSettle] (EC2 answers NotFound for an instance it has not
// propagated yet). [WithDryRun] makes a whole sweeper touch nothing and
// report what it would do.
//
// Every outcome is an event (events.TypeReaped, events.TypeReapFailed,
// events.TypeRowGoneDetected, events.TypeRowGoneTerminated,
// events.TypeSweepAborted, events.TypeDryRun), a structured log line, and
// an OpenTelemetry measurement.
//
// Wiring, with EC2 and Postgres:
//
//	st, _ := store.NewPgx(pool, store.Table{Name: "workspaces", ID: "id",
//		Status: "status", InstanceID: "instance_id", Removed: "removed"})
//	ec2c, _ := awsec2.New(ec2.NewFromConfig(cfg), awsec2.WithOwner(map[string]string{"app": "prod"}))
//	sink, _ := events.NewPgx(pool)
//	sw, err := sweeper.New(st, ec2c,
//		sweeper.WithLeader(st.Lease("leakless-sweeper", 30*time.Second)),
//		sweeper.WithEvents(sink),
//		sweeper.WithRowGone(ec2c, sweeper.RowGone{MinAge: 15 * time.Minute}),
//	)
//	if err != nil {
//		return err
//	}
//	go sw.Run(ctx)
//
// Run several replicas with one lease: only the holder sweeps, and a
// replica that cannot renew stops its pass before the lease can pass to
// another. Without a leader every replica sweeps; that is safe, since the
// clear in Reaped is guarded, but spends API budget several times over.
//
// To sweep many regions or accounts, each within its own EC2 budget, run
// one sweeper per location with [RunAll]: each over the store scoped to
// its location (store.Postgres.In), with the location's client
// (awsec2.Router.At) and the location's shard lease (store.Shards.Lease),
// so that the replicas share the leading.
package sweeper
