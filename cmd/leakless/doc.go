// Command leakless is the operators' tool for a host that runs leakless:
// it answers "what are we leaking right now, and what does it cost?",
// shows the ledger, applies migrations, and lets a person review and
// apply what the sweeper would do.
//
//	go install github.com/leakless/leakless/cmd/leakless@latest
//
//	leakless audit                 census of owned instances and their dependents against the host table (exit 1 on leaks)
//	leakless audit -regions us-east-1,eu-west-1 -location-column region
//	                               the same in each region, against its rows, with a total
//	leakless plan > plan.json      one dry-run sweep: what would be stopped, and why
//	leakless apply -plan plan.json stop exactly the planned instances that are still orphaned or pending
//	leakless ledger -type sweeper.reap_failed -limit 20
//	leakless migrate up|status|sql [store|events] [VERSION]
//	leakless forget RESOURCE_ID... acknowledge a permanent leak dealt with by hand
//
// Every subcommand takes the same connection flags, each defaulting to an
// environment variable: -database-url (DATABASE_URL), -ec2-endpoint
// (EC2_ENDPOINT, "aws" by default, or an EC2-compatible URL such as
// moto's), -region (AWS_REGION), -owner (OWNER, required for anything
// that lists instances), and the host table's names: -table (TABLE),
// -id-column, -status-column, -instance-column, -parent-column,
// -removed-status, and -events-table (EVENTS_TABLE). -output table|json
// chooses the format.
//
// Exit codes: 0 when all is well, 1 when there is a finding (leaks, a
// schema behind, a planned stop refused or failed, a row not pending), 2
// when the command could not run (bad usage, no database, no EC2).
//
// Dollar figures are estimates: on-demand list prices for common
// instance types, EBS volume types and Elastic IPs from a small embedded
// table (-price-file overrides it), never a bill.
package main
