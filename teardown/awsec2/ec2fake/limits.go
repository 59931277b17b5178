package ec2fake

import (
	"strings"
	"time"
)

// Bucket is one token bucket: it holds at most Capacity tokens, starts full,
// and regains PerSecond tokens every second. A zero Capacity turns it off.
type Bucket struct {
	Capacity  int
	PerSecond float64
}

// Limits are the token buckets the server enforces, per account and region
// as EC2 does. Each action has its own request bucket of its category's
// size; TerminateInstances and StopInstances also spend one resource token
// per instance they name.
type Limits struct {
	TerminateCalls     Bucket // TerminateInstances requests
	TerminateResources Bucket // instances named by TerminateInstances
	StopResources      Bucket // instances named by StopInstances
	MutatingCalls      Bucket // requests of each other mutating action
	DeleteCalls        Bucket // requests of each of DeleteVolume, DeleteNetworkInterface and ReleaseAddress
	NonMutatingCalls   Bucket // requests of each Describe* action
}

// EC2Limits returns EC2's documented default buckets: TerminateInstances
// 100 requests refilling 5/s and 1,000 instances refilling 20/s;
// StopInstances 1,000 instances refilling 20/s; DeleteVolume,
// DeleteNetworkInterface and ReleaseAddress 100 refilling 5/s each; other
// mutating actions 50 refilling 5/s; non-mutating actions 100 refilling
// 20/s.
func EC2Limits() Limits {
	return Limits{
		TerminateCalls:     Bucket{Capacity: 100, PerSecond: 5},
		TerminateResources: Bucket{Capacity: 1000, PerSecond: 20},
		StopResources:      Bucket{Capacity: 1000, PerSecond: 20},
		MutatingCalls:      Bucket{Capacity: 50, PerSecond: 5},
		DeleteCalls:        Bucket{Capacity: 100, PerSecond: 5},
		NonMutatingCalls:   Bucket{Capacity: 100, PerSecond: 20},
	}
}

// Scaled returns l with every refill rate multiplied by k and capacities
// unchanged: the same throttling, k times faster. A benchmark that scales
// the client's rates by the same k sees every wait shortened k-fold.
func (l Limits) Scaled(k float64) Limits {
	for _, b := range []*Bucket{&l.TerminateCalls, &l.TerminateResources, &l.StopResources, &l.MutatingCalls, &l.DeleteCalls, &l.NonMutatingCalls} {
		b.PerSecond *= k
	}
	return l
}

// bucket is a Bucket's running state.
type bucket struct {
	Bucket
	tokens float64
	last   time.Time
}

// slack absorbs float rounding, so that a client that waited exactly long
// enough is not throttled by a billionth of a token.
const slack = 1e-6

func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(float64(b.Capacity), b.tokens+dt*b.PerSecond)
		b.last = now
	}
}

// has reports whether n tokens are available now.
func (b *bucket) has(now time.Time, n int) bool {
	if b == nil {
		return true
	}
	b.refill(now)
	return b.tokens+slack >= float64(n)
}

func (b *bucket) take(n int) {
	if b != nil {
		b.tokens = max(0, b.tokens-float64(n))
	}
}

// bucketFor returns the running bucket named key, creating it full from
// cfg; nil when cfg is off.
func (s *Server) bucketFor(key string, cfg Bucket) *bucket {
	if cfg.Capacity <= 0 {
		return nil
	}
	b, ok := s.buckets[key]
	if !ok {
		b = &bucket{Bucket: cfg, tokens: float64(cfg.Capacity), last: s.now()}
		s.buckets[key] = b
	}
	return b
}

// admit applies the token buckets to one request and reports whether it
// may proceed; a throttled request consumes no tokens. It runs with s.mu held.
func (s *Server) admit(action string, q query) bool {
	var calls, resources *bucket
	n := 0
	switch {
	case action == "TerminateInstances":
		calls = s.bucketFor("calls:"+action, s.limits.TerminateCalls)
		resources = s.bucketFor("resources:"+action, s.limits.TerminateResources)
		n = len(unique(q.list("InstanceId")))
	case action == "StopInstances":
		calls = s.bucketFor("calls:"+action, s.limits.MutatingCalls)
		resources = s.bucketFor("resources:"+action, s.limits.StopResources)
		n = len(unique(q.list("InstanceId")))
	case action == "DeleteVolume" || action == "DeleteNetworkInterface" || action == "ReleaseAddress":
		calls = s.bucketFor("calls:"+action, s.limits.DeleteCalls)
	case isNonMutating(action):
		calls = s.bucketFor("calls:"+action, s.limits.NonMutatingCalls)
	case actions[action] != nil:
		calls = s.bucketFor("calls:"+action, s.limits.MutatingCalls)
	}
	now := s.now()
	if !calls.has(now, 1) || !resources.has(now, n) {
		return false
	}
	calls.take(1)
	resources.take(n)
	return true
}

func isNonMutating(action string) bool {
	return strings.HasPrefix(action, "Describe")
}
