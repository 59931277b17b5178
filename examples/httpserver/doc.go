// Command httpserver serves the workspace API of package workspaces: each
// workspace is a row backed by one EC2 instance, and DELETE stops every
// instance its tree still holds, retrying, recording a durable event for
// each give-up, and answering 500 with what is still held (safe to retry).
//
//	go run ./examples/httpserver                      # in memory, embedded fake EC2
//	go run ./examples/httpserver -database-url postgres://... -ec2-endpoint http://127.0.0.1:5000
//
//	curl -X POST localhost:8080/workspaces
//	curl -X POST localhost:8080/workspaces -d '{"parent_id":"<id>"}'
//	curl -X DELETE localhost:8080/workspaces/<id>
//	curl 'localhost:8080/events?type=teardown.retry_exhausted'
//
// Flags, each defaulting to the environment variable named in its help:
// -addr (ADDR), -database-url (DATABASE_URL), -ec2-endpoint (EC2_ENDPOINT),
// -owner (OWNER), -attempts (STOP_ATTEMPTS), -image (IMAGE_ID),
// -instance-type (INSTANCE_TYPE).
package main
