// Package leakless makes cloud-instance teardown finish: no instance is left
// running after its database row is deleted, and nothing still in use is
// ever terminated.
//
// The failure it ends is common to every service that creates and deletes
// resources backed by cloud instances. The delete path calls the cloud once;
// a throttle or a 5xx leaves the row removed with the instance still
// running. Retrying the delete does not help, because the cascade skips rows
// that are already removed. The periodic "orphan sweeper" meant to catch it
// loops forever on permanent errors, never clears the instance id it
// stopped, and cannot see instances whose row is gone entirely. And the one
// event that records the leak is written on a request context that has
// usually expired.
//
// leakless is four small packages, each usable alone:
//
//   - [github.com/leakless/leakless/teardown]: StopWithRetry and StopAll,
//     a retry loop that never loses the last cloud error, over a Stopper
//     interface. [github.com/leakless/leakless/teardown/awsec2] implements
//     it for EC2 with batching, rate limiting and exact error classification.
//   - [github.com/leakless/leakless/events]: durable, structured events in
//     PostgreSQL, written even when the caller's context is already gone.
//   - [github.com/leakless/leakless/store]: the view of the host's own
//     table: cascade removal that re-drives, guarded clears, per-row backoff
//     and a leader lease.
//   - [github.com/leakless/leakless/sweeper]: the backstop that re-drives
//     removed rows and reaps instances whose row is gone, safe by default.
//
// # Wiring
//
// In the host's DELETE handler, remove the tree, stop what it held, and
// clear each row that was stopped (st is a [*github.com/leakless/leakless/store.Postgres], ec2Client an
// [*github.com/leakless/leakless/teardown/awsec2.Client], sink an events sink; the package's examples wire them
// whole):
//
//	held, err := st.RemoveTree(ctx, id)
//	if err != nil { ... }
//	ids := make([]string, len(held))
//	for i, p := range held { ids[i] = p.InstanceID }
//	results := teardown.StopAll(ctx, ec2Client, ids,
//		teardown.WithMaxAttempts(5),
//		teardown.WithOnExhausted(events.Exhausted(sink, events.TypeRetryExhausted)))
//	for _, p := range held {
//		if results[p.InstanceID] == nil {
//			_, _ = st.Reaped(ctx, p) // a failed clear leaves the row to the sweeper
//		}
//	}
//
// And run the sweeper in a worker (or beside the server) for whatever the
// request path could not finish:
//
//	sw, err := sweeper.New(st, ec2Client,
//		sweeper.WithEvents(sink),
//		sweeper.WithLeader(st.Lease("leakless-sweeper", 30*time.Second)),
//		sweeper.WithRowGone(ec2Client, sweeper.RowGone{MinAge: 15 * time.Minute}))
//	if err != nil { ... }
//	go sw.Run(ctx)
//
// [github.com/leakless/leakless/store.Postgres.Migrate] and [github.com/leakless/leakless/events.Postgres.Migrate] apply the
// library's versioned schema at start-up; a host that migrates with its
// own tool applies [github.com/leakless/leakless/store.Postgres.Migrations] instead and calls
// CheckSchema at start-up.
//
// A row that is removed but still holds an instance is "pending": the
// sweeper stops its instance, clears the row only if it still holds that
// same instance, and backs off per row when it cannot. An owned instance
// that no row explains is a "row-gone" candidate: it is terminated only
// after it has been seen orphaned in consecutive passes, is older than the
// host's longest launch-to-record window, and the pass has not tripped a
// blast-radius breaker.
package leakless
