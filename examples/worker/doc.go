// Command worker runs the leakless sweeper beside the workspace API: it
// re-drives removed workspaces that still hold an instance and, with
// -row-gone, terminates owned instances that no workspace explains.
//
//	go run ./examples/worker -database-url postgres://... -ec2-endpoint aws -row-gone -dry-run
//
// On PostgreSQL, replicas share a leader lease, so only one sweeps at a
// time. It serves Prometheus metrics on /metrics and liveness on /healthz,
// and on SIGINT or SIGTERM it finishes recording the pass in flight and
// exits within the pass timeout.
//
// Flags, each defaulting to the environment variable named in its help:
// -addr (ADDR), -database-url (DATABASE_URL), -ec2-endpoint (EC2_ENDPOINT),
// -owner (OWNER), -row-gone (ROW_GONE), -dry-run (DRY_RUN), -min-age
// (MIN_AGE), -interval (INTERVAL), -pass-timeout (PASS_TIMEOUT),
// -lease-ttl (LEASE_TTL).
package main
