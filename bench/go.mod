module github.com/leakless/leakless/bench

go 1.26.0

require (
	github.com/avast/retry-go/v4 v4.7.0
	github.com/cenkalti/backoff/v5 v5.0.3
	github.com/leakless/leakless v0.0.0-00010101000000-000000000000
	github.com/sethvargo/go-retry v0.5.0
	go.uber.org/goleak v1.3.0
)

// The library itself, from this checkout: these comparisons must never
// become dependencies of the library.
replace github.com/leakless/leakless => ../
