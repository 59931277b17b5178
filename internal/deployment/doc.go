// Package deployment holds the settings every leakless program shares
// about where it runs: the PostgreSQL URL, the EC2 endpoint and region,
// and the owner tag that marks this deployment's instances. Each is a
// flag whose default comes from an environment variable, so a program is
// configured the same way from a shell, a container or a cron job.
//
// It is shared by cmd/leakless and the example programs, so that a flag
// means the same thing in each of them.
package deployment
