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
//   - when [WithRowGone] is given, reaps row-gone instances: owned
//     instances that no row explains, such as one launched by a request
//     that crashed before its insert. This is off by default and guarded
//     by age, confirmation across passes, and blast-radius breakers; see
//     [RowGone]. It expects the host to write its row before launching and
//     to tag each instance with the row's id (RowGone.ResourceTag) at
//     launch, so a row still provisioning protects its instance.
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
//	sink, _ := events.NewPostgres(pool)
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
package sweeper
