package teardown

// Jitter chooses how a backoff delay is randomised, so that many callers
// failing together do not retry together.
type Jitter int

const (
	// NoJitter sleeps exactly the capped exponential delay.
	NoJitter Jitter = iota
	// FullJitter sleeps a uniform random duration in [0, delay]. It is the default.
	FullJitter
	// EqualJitter sleeps delay/2 plus a uniform random duration in [0, delay/2].
	EqualJitter
	// DecorrelatedJitter sleeps a uniform random duration in
	// [base, 3·previous sleep], capped at max.
	DecorrelatedJitter
)
