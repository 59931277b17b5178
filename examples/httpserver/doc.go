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
//	curl localhost:8080/healthz   # 200 ok, or 503 while the database does not answer
//	curl localhost:8080/metrics   # Prometheus: request durations, the store's backlog
//
// Every request is logged through slog with its method, path, status and
// duration. /metrics serves http_server_request_duration_seconds by method
// and status, and the store's Stats read at each scrape:
// leakless_store_pending, leakless_store_permanent and
// leakless_store_pending_oldest_age_seconds.
//
// Flags, each defaulting to the environment variable named in its help:
// -addr (ADDR), -database-url (DATABASE_URL), -ec2-endpoint (EC2_ENDPOINT),
// -owner (OWNER), -attempts (STOP_ATTEMPTS), -image (IMAGE_ID),
// -instance-type (INSTANCE_TYPE).
package main
