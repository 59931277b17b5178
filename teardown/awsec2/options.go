package awsec2

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/leakless/leakless/teardown"
)

// Defaults for the options below. The request and resource buckets follow
// EC2's own TerminateInstances budget (StopInstances: a 50-request
// bucket), so that a reap never spends more than the account can afford
// and the host's own launches are not throttled by it. The resource rate
// runs 5% under EC2's 20 instances/s: at exactly EC2's rate, a batch that
// reaches EC2 a moment sooner after its predecessor than the client
// reckoned finds the bucket a few tokens short and is throttled.
const (
	DefaultRatePerSecond         = 5
	DefaultBurst                 = 100 // with Terminate; 50 with Stop
	DefaultResourceRatePerSecond = 19
	DefaultResourceBurst         = 1000
	DefaultDescribeRatePerSecond = 20
	DefaultDescribeBurst         = 100
	DefaultBatchSize             = 500
	MaxBatchSize                 = 1000
)

// stopBurst is EC2's request bucket for StopInstances (a mutating action).
const stopBurst = 50

// Option configures a [Client].
type Option func(*config)

type bucket struct {
	perSecond float64
	burst     int
}

type config struct {
	mode      Mode
	owner     map[string]string
	calls     bucket
	callsSet  bool
	resources bucket
	describes bucket
	batchSize int

	// WithDependents and its buckets (dependents.go).
	dependents   Dependent
	deletes      bucket
	cancels      bucket
	inUseTimeout time.Duration

	err error // first invalid option seen
}

func (c *config) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("awsec2: "+format+": %w", append(args, teardown.ErrConfig)...)
	}
}

func newConfig(opts []Option) (config, error) {
	c := config{
		mode:      Terminate,
		calls:     bucket{DefaultRatePerSecond, DefaultBurst},
		resources: bucket{DefaultResourceRatePerSecond, DefaultResourceBurst},
		describes: bucket{DefaultDescribeRatePerSecond, DefaultDescribeBurst},
		batchSize: DefaultBatchSize,

		deletes:      bucket{DefaultDeleteRatePerSecond, DefaultDeleteBurst},
		cancels:      bucket{DefaultCancelRatePerSecond, DefaultCancelBurst},
		inUseTimeout: DefaultInUseTimeout,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.mode == Stop && !c.callsSet {
		c.calls.burst = stopBurst
	}
	if c.err == nil && c.resources.perSecond != math.Inf(1) && c.batchSize > c.resources.burst {
		c.invalid("batch size %d exceeds the resource burst %d: such a batch could never be sent", c.batchSize, c.resources.burst)
	}
	return c, c.err
}

// WithMode sets what stopping means: [Terminate] (the default) or [Stop].
func WithMode(m Mode) Option {
	return func(c *config) {
		if m != Terminate && m != Stop {
			c.invalid("unknown mode %d", int(m))
			return
		}
		c.mode = m
	}
}

// WithOwner sets the tags, key and value, that mark an instance as this
// deployment's. [Client.Owned] lists only instances carrying every one of
// them, and refuses to run without them. Keys and values must not be empty.
func WithOwner(tags map[string]string) Option {
	return func(c *config) {
		if len(tags) == 0 {
			c.invalid("WithOwner needs at least one tag")
			return
		}
		for k, v := range tags {
			if k == "" || v == "" {
				c.invalid("owner tag %q=%q: keys and values must not be empty", k, v)
				return
			}
		}
		c.owner = tags
	}
}

// WithRateLimit sets the client-side bucket for TerminateInstances or
// StopInstances requests. The default is 5/s with a burst of 100 (50 in
// Stop mode), EC2's own bucket for those calls. perSecond may be
// math.Inf(1) to turn the bucket off.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(c *config) {
		c.calls = c.bucket("rate limit", perSecond, burst, c.calls)
		c.callsSet = true
	}
}

// WithResourceRateLimit sets the client-side bucket for the instances named
// by TerminateInstances or StopInstances, which EC2 meters apart from the
// requests (1,000 instances, refilling 20/s). The default is 19
// instances/s with a burst of 1,000. The burst must be at least the batch
// size. perSecond may be math.Inf(1) to turn the bucket off.
func WithResourceRateLimit(perSecond float64, burst int) Option {
	return func(c *config) { c.resources = c.bucket("resource rate limit", perSecond, burst, c.resources) }
}

// WithDescribeRateLimit sets the client-side bucket for DescribeInstances
// requests. The default is 20/s with a burst of 100, EC2's bucket for
// non-mutating calls. perSecond may be math.Inf(1) to turn it off.
func WithDescribeRateLimit(perSecond float64, burst int) Option {
	return func(c *config) { c.describes = c.bucket("describe rate limit", perSecond, burst, c.describes) }
}

func (c *config) bucket(name string, perSecond float64, burst int, old bucket) bucket {
	if !(perSecond > 0) || burst < 1 {
		c.invalid("%s needs a positive rate and a burst of at least 1, got %v/s, burst %d", name, perSecond, burst)
		return old
	}
	return bucket{perSecond, burst}
}

// WithBatchSize sets how many ids go in one TerminateInstances or
// StopInstances call. The default is 500; n must be 1 to 1,000.
func WithBatchSize(n int) Option {
	return func(c *config) {
		if n < 1 || n > MaxBatchSize {
			c.invalid("batch size must be 1 to %d, got %d", MaxBatchSize, n)
			return
		}
		c.batchSize = n
	}
}

// limit converts a per-second rate for x/time/rate, where infinity is rate.Inf.
func limit(perSecond float64) rate.Limit {
	if math.IsInf(perSecond, 1) {
		return rate.Inf
	}
	return rate.Limit(perSecond)
}
