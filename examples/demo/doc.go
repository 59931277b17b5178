// Command demo tells the whole leakless story in one process, in well under
// a minute, with no database or AWS account:
//
//	go run ./examples/demo
//
// It launches workspaces through the HTTP API of package workspaces (some
// nested three deep), each backed by an EC2 instance on an embedded fake
// EC2; makes EC2 misbehave (throttling, 5xx answers, a termination-protected
// instance, and an instance launched with the deployment's tags whose row
// was never written); gives some workspaces what instances leave behind
// (two extra volumes and an Elastic IP each, a detached volume, and an
// instance from a persistent spot request whose row was never written);
// deletes every workspace through the API, showing the
// deletes that failed and the durable events they left; runs the sweeper
// until nothing it can fix is left; and prints what happened to every
// instance, and how many of those dependents are left (none). It ends with
// the audit `leakless audit` takes, over its own store, EC2 and ledger: the
// protected instance is the one leak it reports.
//
// It exits 1 if any instance leaked other than the protected one (which
// must be reported as a permanent leak, with its sweeper.reap_failed
// event), if any instance in use was terminated, or if any dependent is
// left.
//
// -database-url runs it on PostgreSQL (in a schema of its own, dropped at
// the end); -ec2-endpoint on an EC2-compatible endpoint such as moto (where
// the throttling and 5xx answers cannot be injected, so only the protected
// and row-gone instances are, and only volumes are left behind).
package main
