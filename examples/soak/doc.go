// Package soak proves leakless's promises under load and faults. It has no
// API: its test runs the workspaces example the way production would run
// it, and breaks everything it can while it runs.
//
// The promises are three invariants and one property:
//
//   - nothing leaks: after the sweepers drain, every owned instance that is
//     not terminated belongs to a live row, except termination-protected
//     ones, and each of those has a sweeper.reap_failed event;
//   - nothing an instance leaves behind outlives its row: no owned volume,
//     Elastic IP, network interface or open spot request whose row is
//     removed or gone is left, unless a live instance still uses it;
//   - nothing live is terminated: no instance is terminated before its row
//     was marked removed;
//   - nothing recorded is lost: every stop the API gives up on leaves exactly
//     one durable teardown.retry_exhausted event.
//
// The test, TestSoak, runs on a real PostgreSQL (internal/pgtest) with two
// replicas of the workspaces API and three sweeper replicas that share one
// leader lease, all over one ec2fake server, while workers drive workspace
// lifecycles concurrently: create, nest, delete, delete again. One in five
// recorded workspaces gets two volumes that are not deleted with its
// instance and an Elastic IP, which the stops finish (awsec2.WithDependents:
// a DELETE's stop terminates and answers 202, pending, and the sweepers'
// re-drive finishes what the termination freed), and every fiftieth
// lifecycle leaves a volume detached behind its removed row, which only
// the sweepers reap (sweeper.WithDependents). Meanwhile
// EC2 answers 20% of calls with a 5xx, 10% with a throttle and holds 5% past
// the attempt timeout; 1% of instances are termination-protected; 1% of
// launches lose the owner tag, which IAM's tag condition then requires for
// every terminate, so a whole batch is refused for one of them; every new
// instance stays invisible (NotFound) for two seconds; 1% of creates die
// between launch and record; instances appear that no row ever explains;
// sweeper replicas are cancelled and restarted at random; and the system's
// database connections are killed with pg_terminate_backend, and once, at a
// random moment, every connection to PostgreSQL is dropped and new ones are
// refused for three seconds (a TCP proxy stands between the system and the
// database), which the API's and sweepers' events.Spool must carry the
// ledger across. On odd seeds
// the host table's instance column is NOT NULL with an empty-string
// default. Then the faults stop, the sweepers drain, and the test checks
// the invariants and prints what happened.
//
// It runs in the ordinary suite at a size that fits a couple of minutes
// under the race detector on two cores. Run it ten times bigger, which
// takes several times longer than go test's default ten-minute timeout, with
//
//	LEAKLESS_SOAK=1 go test -race -timeout 30m -run Soak -v ./examples/soak/
//
// or with the -soak flag after the package (go test ./examples/soak/ -run
// Soak -soak). LEAKLESS_SOAK_SEED replays a run's fault decisions (the
// interleaving of its goroutines is not replayed).
package soak
