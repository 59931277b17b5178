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
// at least one id from it, and a split makes two smaller batches, so it
// always ends. sorted says the ids were already sorted by owner tags (see
// split), which is done at most once per batch.
func (c *Client) settle(ctx context.Context, ids []string, res map[string]error, sorted bool) {
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
				c.split(ctx, ids, kind, res, sorted)
				return
			}
			// One id is left, so it is the one the answer is about.
			named = ids
		}
		switch kind {
		case refused, denied:
			for _, id := range named {
				res[id] = c.failed(id, permanent, err)
			}
		default:
			c.confirm(ctx, named, kind, err, res)
		}
		ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(named, id) })
	}
}

// split settles ids after EC2 refused them all with an answer that names
// none of them, so that only the culprits fail and every other id is
// stopped.
//
// An IAM refusal is most likely a policy conditioned on the owner tag,
// refusing the whole call for one instance that lacks it, so the first
// split of a denied batch describes it once and sends the ids without
// every owner tag apart from the rest. Otherwise, or when the refusal
// persists, the batch is halved. Halving n ids costs at most 2n-1 calls,
// one per node of the halving tree: that worst case is IAM denying the
// action outright, when every call down to each single id is refused.
func (c *Client) split(ctx context.Context, ids []string, kind class, res map[string]error, sorted bool) {
	if kind == denied && !sorted && len(c.owner) > 0 {
		sorted = true
		if suspects, rest, err := c.untagged(ctx, ids); err == nil && len(suspects) > 0 && len(rest) > 0 {
			c.settle(ctx, suspects, res, sorted)
			c.settle(ctx, rest, res, sorted)
			return
		}
	}
	half := len(ids) / 2
	c.settle(ctx, ids[:half], res, sorted)
	c.settle(ctx, ids[half:], res, sorted)
}

// untagged describes ids and returns, in order, those that DescribeInstances
// does not show carrying every owner tag, and the rest.
func (c *Client) untagged(ctx context.Context, ids []string) (suspects, rest []string, err error) {
	tagged := make(map[string]bool, len(ids))
	err = c.byID(ctx, ids, func(in types.Instance) {
		if _, ok := c.convert(in); ok {
			tagged[aws.ToString(in.InstanceId)] = true
		}
	})
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		if tagged[id] {
			rest = append(rest, id)
		} else {
			suspects = append(suspects, id)
		}
	}
	return suspects, rest, nil
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

// notFound wraps cause for id as teardown.ErrNotFound, keeping cause
// reachable.
func (c *Client) notFound(id string, cause error) error {
	return fmt.Errorf("awsec2: %s %s: %w: %w", c.mode, id, teardown.ErrNotFound, cause)
}

// confirm settles ids that EC2 said do not exist (notFound) or cannot be
// acted on in their state (wrongState), by describing them: an instance
// that is shutting down or terminated is gone; a stopped one needs no
// stopping; any other is still there, and retryable. One that is not
// described is teardown.ErrNotFound, not gone: for a while after launch
// EC2 neither knows nor lists an instance that is running, and only the
// caller can tell how long the answer has held.
func (c *Client) confirm(ctx context.Context, ids []string, kind class, cause error, res map[string]error) {
	states, err := c.states(ctx, ids)
	for _, id := range ids {
		state, seen := states[id]
		switch {
		case err != nil:
			res[id] = fmt.Errorf("awsec2: %s %s: %w (confirming with DescribeInstances: %w)", c.mode, id, cause, err)
		case !seen:
			res[id] = c.notFound(id, cause)
		case state == types.InstanceStateNameShuttingDown || state == types.InstanceStateNameTerminated:
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
func (c *Client) states(ctx context.Context, ids []string) (map[string]types.InstanceStateName, error) {
	out := make(map[string]types.InstanceStateName, len(ids))
	err := c.byID(ctx, ids, func(in types.Instance) {
		if in.InstanceId != nil && in.State != nil {
			out[*in.InstanceId] = in.State.Name
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// byID describes ids by instance-id filter, maxFilterValues at a time,
// calling f for every instance described. An unknown id is simply not
// described: naming it in InstanceIds would fail the whole call.
func (c *Client) byID(ctx context.Context, ids []string, f func(types.Instance)) error {
	for chunk := range slices.Chunk(ids, maxFilterValues) {
		filters := []types.Filter{{Name: aws.String("instance-id"), Values: chunk}}
		if err := c.describe(ctx, filters, f); err != nil {
			return err
		}
	}
	return nil
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
