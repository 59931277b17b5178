package awsec2

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"golang.org/x/time/rate"

	"github.com/leakless/leakless/teardown"
)

// API is the part of *ec2.Client that a [Client] uses.
type API interface {
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	StopInstances(ctx context.Context, in *ec2.StopInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// Mode says what stopping an instance means.
type Mode int

const (
	// Terminate calls TerminateInstances. It is the default.
	Terminate Mode = iota
	// Stop calls StopInstances: the instance stops billing for compute but
	// keeps its volumes.
	Stop
)

// String returns "terminate" or "stop".
func (m Mode) String() string {
	switch m {
	case Terminate:
		return "terminate"
	case Stop:
		return "stop"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ErrInvalidID is wrapped (and marked permanent) in the result for an id
// that is not an EC2 instance id; no call is made for it.
var ErrInvalidID = errors.New("awsec2: invalid instance id")

// ErrNoOwner is returned by [Client.Owned] and [Client.Describe] when the
// client was built without [WithOwner]: an unfiltered list would hand a
// reaper every instance in the account.
var ErrNoOwner = errors.New("awsec2: no owner tags configured: refusing to list instances")

// Client stops EC2 instances and lists the ones this deployment owns. It
// implements teardown.Stopper, teardown.BatchStopper, teardown.Inventory
// and teardown.Describer, and is safe for concurrent use; its rate limiters
// are shared by every call.
type Client struct {
	api       API
	mode      Mode
	owner     map[string]string
	batchSize int

	calls     *rate.Limiter // TerminateInstances or StopInstances requests
	resources *rate.Limiter // instances named by those requests
	describes *rate.Limiter // DescribeInstances requests

	deps *dependents // WithDependents and the dependents inventory; nil when api has no dependents' calls
}

var (
	_ teardown.Stopper      = (*Client)(nil)
	_ teardown.BatchStopper = (*Client)(nil)
	_ teardown.Inventory    = (*Client)(nil)
	_ teardown.Describer    = (*Client)(nil)
)

// New returns a Client that calls api, usually an *ec2.Client. Bad options
// are reported here, wrapping teardown.ErrConfig.
func New(api API, opts ...Option) (*Client, error) {
	if api == nil || isNilPointer(api) {
		return nil, fmt.Errorf("awsec2: nil API: %w", teardown.ErrConfig)
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	deps, err := newDependents(api, c)
	if err != nil {
		return nil, err
	}
	return &Client{
		api:       api,
		mode:      c.mode,
		owner:     maps.Clone(c.owner),
		batchSize: c.batchSize,
		calls:     rate.NewLimiter(limit(c.calls.perSecond), c.calls.burst),
		resources: rate.NewLimiter(limit(c.resources.perSecond), c.resources.burst),
		describes: rate.NewLimiter(limit(c.describes.perSecond), c.describes.burst),
		deps:      deps,
	}, nil
}

// isNilPointer catches a nil *ec2.Client passed as a non-nil API.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// Mode returns what the client does to an instance.
func (c *Client) Mode() Mode { return c.mode }

// noRetry switches the SDK's own retries off for one call: teardown's loop
// is the only retry layer, so a call is one attempt and the EC2 error code
// is never lost in an SDK backoff.
func noRetry(o *ec2.Options) {
	o.Retryer = aws.NopRetryer{}
	o.APIOptions = append(o.APIOptions, addAnswerCheck)
}

// Stop terminates (or stops) the instance id. It returns nil on success, an
// error wrapping teardown.ErrGone when the instance is shutting down or
// terminated, an error wrapping teardown.ErrNotFound (retryable) when EC2
// neither knows nor lists it, an error marked teardown.Permanent when no
// retry can help, and any other error when one may. Every error from EC2
// stays reachable with errors.As(err, &apiErr) for a smithy.APIError.
func (c *Client) Stop(ctx context.Context, id string) error {
	return c.StopBatch(ctx, []string{id})[id]
}

// StopBatch terminates (or stops) every id, at most the batch size per
// call, and returns one result per distinct id, classified as Stop's are.
// Ids that are not EC2 instance ids fail permanently without a call, and a
// repeated id is sent once.
//
// EC2 fails a whole call for one bad id, so StopBatch takes failures apart:
// ids named by InvalidInstanceID.NotFound are confirmed with
// DescribeInstances (gone when described as shutting down or terminated,
// teardown.ErrNotFound when not described, retryable when still live) and
// the rest are re-sent; an id refused by OperationNotPermitted (termination
// protection) fails alone and the rest are re-sent. When EC2's answer names
// none of the batch's ids, as UnauthorizedOperation never does, the batch is
// split until only the culprits fail: for UnauthorizedOperation the ids not
// described with every owner tag are sent apart first, then halves. That
// costs at most 2n-1 calls for n ids, reached when IAM denies the action
// itself. AuthFailure fails every id of the call.
func (c *Client) StopBatch(ctx context.Context, ids []string) map[string]error {
	res := make(map[string]error, len(ids))
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, seen := res[id]; seen {
			continue
		}
		res[id] = nil
		if !validID(id) {
			res[id] = teardown.Permanent(fmt.Errorf("%w: %q", ErrInvalidID, id))
			continue
		}
		valid = append(valid, id)
	}
	for batch := range slices.Chunk(valid, c.batchSize) {
		if c.deps.on() {
			c.stopOwning(ctx, batch, res) // dependents.go
			continue
		}
		c.settle(ctx, batch, res, false)
	}
	return res
}
