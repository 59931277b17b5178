// Package bench compares teardown.StopWithRetry with popular Go retry
// libraries on the same scenarios: the cost of a call that succeeds at once,
// the cost of three failed calls with no delay between them, and what each
// returns when its context is cancelled while it sleeps between attempts.
//
// It is a module of its own so that the libraries it compares against never
// become dependencies of leakless. Run it from this directory:
//
//	go test ./...
//	go test -run '^$' -bench . -benchmem -count 6 ./...
package bench
