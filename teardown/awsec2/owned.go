package awsec2

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/teardown"
)

// liveStates are the states in which an instance still costs money or may
// be started again: the ones Owned lists.
var liveStates = []types.InstanceStateName{
	types.InstanceStateNamePending,
	types.InstanceStateNameRunning,
	types.InstanceStateNameStopping,
	types.InstanceStateNameStopped,
}

// stopModeStates are the states Owned lists in Stop mode: a stopping or
// stopped instance is already as far as a Stop-mode client takes one, and
// listing it would have a sweeper stop it again on every pass.
var stopModeStates = []types.InstanceStateName{
	types.InstanceStateNamePending,
	types.InstanceStateNameRunning,
}

// ownedStates are the instance states Owned lists in c's mode.
func (c *Client) ownedStates() []types.InstanceStateName {
	if c.mode == Stop {
		return stopModeStates
	}
	return liveStates
}

// Owned lists the live (pending, running, stopping, stopped) instances
// that carry every owner tag with its value, paging DescribeInstances
// with one tag:KEY filter per owner tag. In Stop mode it lists only
// pending and running ones: the others are already stopped, or on their way. It returns [ErrNoOwner] when the
// client has no owner tags. The filter is checked again on every instance
// returned, so a server that ignored it could not widen the list.
func (c *Client) Owned(ctx context.Context) ([]teardown.Instance, error) {
	if len(c.owner) == 0 {
		return nil, ErrNoOwner
	}
	var filters []types.Filter
	for _, k := range slices.Sorted(maps.Keys(c.owner)) {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{c.owner[k]}})
	}
	states := make([]string, len(c.ownedStates()))
	for i, s := range c.ownedStates() {
		states[i] = string(s)
	}
	filters = append(filters, types.Filter{Name: aws.String("instance-state-name"), Values: states})

	var out []teardown.Instance
	err := c.describe(ctx, filters, func(in types.Instance) {
		if inst, ok := c.owned(in); ok {
			out = append(out, inst)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("awsec2: list owned instances: %w", err)
	}
	return out, nil
}

// Describe returns the current state of those of ids that exist and carry
// every owner tag with its value, in any state, shutting-down and
// terminated included; an id it does not return is unknown to EC2 (or not
// yet visible), not ours, or not an instance id. It describes by
// instance-id filter, 200 ids a call, so an unknown id does not fail the
// call, and waits for the describe bucket before each page. It returns
// [ErrNoOwner] when the client has no owner tags.
func (c *Client) Describe(ctx context.Context, ids []string) ([]teardown.Instance, error) {
	if len(c.owner) == 0 {
		return nil, ErrNoOwner
	}
	seen := make(map[string]bool, len(ids))
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if validID(id) && !seen[id] {
			seen[id] = true
			valid = append(valid, id)
		}
	}
	// EC2 lists an instance once; seen guards against a server that did not.
	clear(seen)
	var out []teardown.Instance
	err := c.byID(ctx, valid, func(in types.Instance) {
		if inst, ok := c.convert(in); ok && !seen[inst.ID] {
			seen[inst.ID] = true
			out = append(out, inst)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("awsec2: describe instances: %w", err)
	}
	return out, nil
}

// owned converts in, and reports whether it is live and carries every
// owner tag.
func (c *Client) owned(in types.Instance) (teardown.Instance, bool) {
	inst, ok := c.convert(in)
	return inst, ok && slices.Contains(c.ownedStates(), in.State.Name)
}

// convert converts in, in any state, and reports whether it carries every
// owner tag with its value.
func (c *Client) convert(in types.Instance) (teardown.Instance, bool) {
	tags := make(map[string]string, len(in.Tags))
	for _, t := range in.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	for k, v := range c.owner {
		if got, ok := tags[k]; !ok || got != v {
			return teardown.Instance{}, false
		}
	}
	if in.State == nil || in.InstanceId == nil {
		return teardown.Instance{}, false
	}
	return teardown.Instance{
		ID:         *in.InstanceId,
		State:      string(in.State.Name),
		Type:       string(in.InstanceType),
		LaunchedAt: aws.ToTime(in.LaunchTime),
		Tags:       tags,
	}, true
}
