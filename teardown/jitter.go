package teardown

import (
	"math/bits"
	"math/rand/v2"
	"time"
)

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

// backoff computes the sleep before each retry of one loop. It is a value
// held on the loop's stack; only DecorrelatedJitter needs the state.
type backoff struct {
	base, max time.Duration
	jitter    Jitter
	rand      func() uint64
	prev      time.Duration // the last sleep, for DecorrelatedJitter
}

func (c *config) backoff() backoff {
	r := c.rand
	if r == nil {
		r = rand.Uint64
	}
	return backoff{base: c.base, max: c.max, jitter: c.jitter, rand: r}
}

// next returns the sleep that follows failed attempt n (1-based).
func (b *backoff) next(n int) time.Duration {
	d := capped(b.base, b.max, n)
	switch b.jitter {
	case FullJitter:
		d = b.uniform(d)
	case EqualJitter:
		half := d / 2
		d = half + b.uniform(d-half)
	case DecorrelatedJitter:
		prev := max(b.prev, b.base)
		upper := b.max
		if prev <= b.max/3 {
			upper = 3 * prev
		}
		d = b.base + b.uniform(upper-b.base)
		b.prev = d
	}
	return d
}

// uniform returns a uniformly random duration in [0, d], for d ≥ 0.
func (b *backoff) uniform(d time.Duration) time.Duration {
	// The high word of r·(d+1) is uniform in [0, d] (Lemire's method,
	// without the rejection step: the bias is below 2^-63·d).
	hi, _ := bits.Mul64(b.rand(), uint64(d)+1)
	return time.Duration(hi)
}

// capped returns min(max, base·2^(n-1)). It compares before it shifts, so
// no attempt number, however large, can overflow into a negative or
// wrapped-around delay.
func capped(base, max time.Duration, n int) time.Duration {
	if base <= 0 || n < 1 {
		return 0
	}
	shift := n - 1
	if shift >= 63 || base > max>>shift {
		return max
	}
	return base << shift
}
