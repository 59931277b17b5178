// Package backend opens what the example programs run on, as their flags
// say: the workspaces table and the events in PostgreSQL or in memory, and
// EC2 as an embedded fake, an EC2-compatible endpoint such as moto, or AWS.
//
// It is wiring shared by examples/httpserver, examples/worker and
// examples/demo, so that each program's main reads as the story it tells.
package backend
