package teardown

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestCappedNeverOverflows(t *testing.T) {
	for _, tt := range []struct {
		name      string
		base, max time.Duration
	}{
		{"seconds", time.Second, 20 * time.Second},
		{"nanosecond base, largest cap", 1, math.MaxInt64},
		{"base equals cap", time.Hour, time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prev := time.Duration(0)
			for _, n := range append(seq(1, 200), 1<<20, 1<<40, math.MaxInt) {
				d := capped(tt.base, tt.max, n)
				if d <= 0 || d > tt.max || d < prev {
					t.Fatalf("capped(%v, %v, %d) = %v after %v: want a non-decreasing delay in (0, %v]", tt.base, tt.max, n, d, prev, tt.max)
				}
				prev = d
			}
			if got := capped(tt.base, tt.max, math.MaxInt); got != tt.max {
				t.Errorf("capped(%v, %v, MaxInt) = %v, want the cap", tt.base, tt.max, got)
			}
		})
	}
	if got := capped(0, time.Second, 5); got != 0 {
		t.Errorf("capped(0, 1s, 5) = %v, want 0", got)
	}
	if got, want := capped(3*time.Millisecond, time.Hour, 4), 24*time.Millisecond; got != want {
		t.Errorf("capped(3ms, 1h, 4) = %v, want %v", got, want)
	}
}

func seq(from, to int) []int {
	var s []int
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}

func TestJitterStaysInItsRange(t *testing.T) {
	const base, ceiling = 100 * time.Millisecond, 5 * time.Second
	sources := map[string]func() uint64{
		"zero":    func() uint64 { return 0 },
		"highest": func() uint64 { return math.MaxUint64 },
		"random":  rand.New(rand.NewPCG(1, 2)).Uint64,
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			for _, j := range []Jitter{NoJitter, FullJitter, EqualJitter, DecorrelatedJitter} {
				b := backoff{base: base, max: ceiling, jitter: j, rand: src}
				prev := base
				var lowest, highest time.Duration = math.MaxInt64, 0
				for n := 1; n <= 64; n++ {
					limit := capped(base, ceiling, n)
					lo, hi := limit, limit
					switch j {
					case FullJitter:
						lo = 0
					case EqualJitter:
						lo = limit / 2
					case DecorrelatedJitter:
						lo, hi = base, min(ceiling, 3*prev)
					}
					d := b.next(n)
					if d < lo || d > hi {
						t.Fatalf("jitter %d: delay after attempt %d = %v, want within [%v, %v]", j, n, d, lo, hi)
					}
					prev = d
					lowest, highest = min(lowest, d), max(highest, d)
				}
				// The extremes of the source reach the extremes of the range.
				switch name {
				case "zero":
					if j == FullJitter && highest != 0 {
						t.Errorf("jitter %d with a zero source reached %v, want 0", j, highest)
					}
					if j == DecorrelatedJitter && highest != base {
						t.Errorf("jitter %d with a zero source reached %v, want the base %v", j, highest, base)
					}
				case "highest":
					if j != NoJitter && highest != ceiling {
						t.Errorf("jitter %d with the highest source peaked at %v, want the cap %v", j, highest, ceiling)
					}
				case "random":
					if j != NoJitter && lowest == highest {
						t.Errorf("jitter %d with a random source always slept %v", j, lowest)
					}
				}
			}
		})
	}
}
