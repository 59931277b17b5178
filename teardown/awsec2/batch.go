package awsec2

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/teardown"
)

// settle sends ids (distinct and well-formed, at most a batch) and records
// a result for each. Every pass either settles the whole batch or removes
// at least one id from it, so it always ends.
func (c *Client) settle(ctx context.Context, ids []string, res map[string]error) {
	for len(ids) > 0 {
		answered, err := c.send(ctx, ids)
		if err == nil {
			// EC2 lists every instance it acted on; one it does not list
			// was not stopped, whatever the status said.
			for _, id := range ids {
				res[id] = nil
				if !answered[id] {
					res[id] = fmt.Errorf("awsec2: %s %s: %w", c.mode, id, errNotNamed)
				}
			}
			return
		}
		kind, msg := classify(err)
		if !kind.perID() {
			for _, id := range ids {
				res[id] = c.failed(id, kind, err)
			}
			return
		}
		named := slices.DeleteFunc(idsInMessage(msg), func(id string) bool { return !slices.Contains(ids, id) })
		if len(named) == 0 {
			if len(ids) > 1 {
				// The message names none of our ids: halve the batch until
				// it does, or until one id is left, which must be the one.
				half := len(ids) / 2
				c.settle(ctx, ids[:half], res)
				c.settle(ctx, ids[half:], res)
				return
			}
			named = ids
		}
		if kind == refused {
			for _, id := range named {
				res[id] = c.failed(id, permanent, err)
			}
		} else {
			c.confirm(ctx, named, kind, err, res)
		}
		ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(named, id) })
	}
}

// send makes one TerminateInstances or StopInstances call, after waiting
// for the client's buckets.
func (c *Client) send(ctx context.Context, ids []string) (map[string]bool, error) {
	if err := wait(ctx, c.calls, 1); err != nil {
		return nil, err
	}
	if err := wait(ctx, c.resources, len(ids)); err != nil {
		return nil, err
	}
	var (
		changed []types.InstanceStateChange
		err     error
	)
	switch c.mode {
	case Stop:
		var out *ec2.StopInstancesOutput
		if out, err = c.api.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids}, noRetry); err == nil {
			changed = out.StoppingInstances
		}
	default:
		var out *ec2.TerminateInstancesOutput
		if out, err = c.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}, noRetry); err == nil {
			changed = out.TerminatingInstances
		}
	}
	if err != nil {
		if kind, _ := classify(err); kind == throttled {
			drain(c.calls)
			drain(c.resources)
		}
		return nil, err
	}
	named := make(map[string]bool, len(changed))
	for _, ch := range changed {
		named[aws.ToString(ch.InstanceId)] = true
	}
	return named, nil
}

// failed wraps err for id according to kind.
func (c *Client) failed(id string, kind class, err error) error {
	err = fmt.Errorf("awsec2: %s %s: %w", c.mode, id, err)
	if kind == permanent {
		return teardown.Permanent(err)
	}
	return err
}

// gone wraps cause for id as teardown.ErrGone, keeping cause reachable.
func (c *Client) gone(id string, cause error) error {
	return fmt.Errorf("awsec2: %s %s: %w: %w", c.mode, id, teardown.ErrGone, cause)
}

// confirm settles ids that EC2 said do not exist (notFound) or cannot be
// acted on in their state (wrongState), by describing them: an instance
// that is not described, or is shutting down or terminated, is gone; a
// stopped one needs no stopping; any other is still there, and retryable.
func (c *Client) confirm(ctx context.Context, ids []string, kind class, cause error, res map[string]error) {
	states, err := c.states(ctx, ids)
	for _, id := range ids {
		state, seen := states[id]
		switch {
		case err != nil:
			res[id] = fmt.Errorf("awsec2: %s %s: %w (confirming with DescribeInstances: %w)", c.mode, id, cause, err)
		case !seen || state == types.InstanceStateNameShuttingDown || state == types.InstanceStateNameTerminated:
			res[id] = c.gone(id, cause)
		case c.mode == Stop && state == types.InstanceStateNameStopped:
			res[id] = nil
		default:
			res[id] = fmt.Errorf("awsec2: %s %s: still described as %s: %w", c.mode, id, state, cause)
		}
	}
}

// maxFilterValues is EC2's limit on the values of one filter.
const maxFilterValues = 200

// states describes ids (missing ones are simply absent from the result).
// It filters by instance-id rather than naming the ids, because naming an
// unknown id would fail the whole call.
func (c *Client) states(ctx context.Context, ids []string) (map[string]types.InstanceStateName, error) {
	out := make(map[string]types.InstanceStateName, len(ids))
	for chunk := range slices.Chunk(ids, maxFilterValues) {
		filters := []types.Filter{{Name: aws.String("instance-id"), Values: chunk}}
		err := c.describe(ctx, filters, func(in types.Instance) {
			if in.InstanceId != nil && in.State != nil {
				out[*in.InstanceId] = in.State.Name
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// describe pages DescribeInstances with filters, calling f for every
// instance, waiting for the describe bucket before each page.
func (c *Client) describe(ctx context.Context, filters []types.Filter, f func(types.Instance)) error {
	var token *string
	seen := map[string]bool{}
	for {
		if err := wait(ctx, c.describes, 1); err != nil {
			return err
		}
		page, err := c.api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
			Filters:    filters,
			MaxResults: aws.Int32(1000),
			NextToken:  token,
		}, noRetry)
		if err != nil {
			if kind, _ := classify(err); kind == throttled {
				drain(c.describes)
			}
			return err
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				f(in)
			}
		}
		token = page.NextToken
		if token == nil || *token == "" {
			return nil
		}
		if seen[*token] {
			return fmt.Errorf("awsec2: DescribeInstances returned page token %q twice", *token)
		}
		seen[*token] = true
	}
}
