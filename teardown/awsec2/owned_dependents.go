package awsec2

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/time/rate"

	"github.com/leakless/leakless/teardown"
)

// ErrNoDependentsAPI is returned by [Client.OwnedDependents] and
// [Client.ReapDependents] when the client's API lacks the volume,
// interface, address and spot request calls (it is not a [DependentsAPI]).
var ErrNoDependentsAPI = errors.New("awsec2: the API has no calls for volumes, interfaces, addresses and spot requests")

// OwnedDependents lists the dependents carrying every owner tag with its
// value: volumes, network interfaces, Elastic IPs, and open or active spot
// requests, each marked InUse unless it is free to reap (an available
// volume or interface, an unassociated address, a request whose instance
// is not live). It lists the kinds given to [WithDependents], or every
// kind without it, and never an untagged one: it returns [ErrNoOwner]
// without owner tags. The tag filters are checked again on everything EC2
// returns.
func (c *Client) OwnedDependents(ctx context.Context) ([]teardown.Dependent, error) {
	if len(c.owner) == 0 {
		return nil, ErrNoOwner
	}
	d := c.deps
	if d == nil {
		return nil, ErrNoDependentsAPI
	}
	kinds := d.kinds & allKinds
	if kinds == 0 {
		kinds = allKinds
	}
	var filters []types.Filter
	for _, k := range slices.Sorted(maps.Keys(c.owner)) {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{c.owner[k]}})
	}
	with := func(name string, values ...string) []types.Filter {
		return append(slices.Clone(filters), types.Filter{Name: aws.String(name), Values: values})
	}
	owned := func(tags []types.Tag) bool {
		for k, v := range c.owner {
			if !slices.ContainsFunc(tags, func(t types.Tag) bool { return aws.ToString(t.Key) == k && aws.ToString(t.Value) == v }) {
				return false
			}
		}
		return true
	}
	var out []teardown.Dependent
	if kinds&Volumes != 0 {
		err := d.volumePages(ctx, filters, func(v types.Volume) {
			if owned(v.Tags) && v.State != types.VolumeStateDeleting && v.State != types.VolumeStateDeleted {
				dep := dependent(teardown.DependentVolume, v.VolumeId, string(v.State), v.Tags, aws.ToTime(v.CreateTime), v.State != types.VolumeStateAvailable)
				dep.Type, dep.SizeGiB = string(v.VolumeType), int(aws.ToInt32(v.Size))
				out = append(out, dep)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("awsec2: list owned volumes: %w", err)
		}
	}
	if kinds&Interfaces != 0 {
		err := d.interfacePages(ctx, filters, func(n types.NetworkInterface) {
			if owned(n.TagSet) {
				out = append(out, dependent(teardown.DependentInterface, n.NetworkInterfaceId, string(n.Status), n.TagSet, time.Time{}, n.Status != types.NetworkInterfaceStatusAvailable))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("awsec2: list owned network interfaces: %w", err)
		}
	}
	if kinds&Addresses != 0 {
		err := d.addresses(ctx, filters, func(a types.Address) {
			if owned(a.Tags) && a.AllocationId != nil {
				state := "unassociated"
				if a.AssociationId != nil {
					state = "associated"
				}
				out = append(out, dependent(teardown.DependentAddress, a.AllocationId, state, a.Tags, time.Time{}, a.AssociationId != nil))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("awsec2: list owned addresses: %w", err)
		}
	}
	if kinds&SpotRequests != 0 {
		var reqs []types.SpotInstanceRequest
		err := d.spotPages(ctx, with("state", "open", "active"), func(r types.SpotInstanceRequest) {
			if owned(r.Tags) && (r.State == types.SpotInstanceStateOpen || r.State == types.SpotInstanceStateActive) {
				reqs = append(reqs, r)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("awsec2: list owned spot requests: %w", err)
		}
		var ids []string
		for _, r := range reqs {
			if r.InstanceId != nil {
				ids = append(ids, *r.InstanceId)
			}
		}
		states, err := c.states(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("awsec2: describe the spot requests' instances: %w", err)
		}
		for _, r := range reqs {
			// A request whose instance lives is in use, whatever the row.
			st, ok := states[aws.ToString(r.InstanceId)]
			live := ok && slices.Contains(liveStates, st)
			out = append(out, dependent(teardown.DependentSpotRequest, r.SpotInstanceRequestId, string(r.State), r.Tags, aws.ToTime(r.CreateTime), live))
		}
	}
	return out, nil
}

func dependent(kind string, id *string, state string, tags []types.Tag, created time.Time, inUse bool) teardown.Dependent {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return teardown.Dependent{Kind: kind, ID: aws.ToString(id), State: state, CreatedAt: created, Tags: m, InUse: inUse}
}

// ReapDependents deletes the volumes and interfaces in ds, releases the
// Elastic IPs and cancels the spot requests, each under its action's
// bucket, and returns one result per id, classified as a stop's: nil when
// done, an error wrapping teardown.ErrGone when already gone, retryable
// when in use (EC2 refuses to delete what is attached), marked
// teardown.Permanent for AuthFailure, UnauthorizedOperation and the like.
func (c *Client) ReapDependents(ctx context.Context, ds []teardown.Dependent) map[string]error {
	res := make(map[string]error, len(ds))
	d := c.deps
	var work []func(map[string]error)
	var spots []string
	for _, dep := range ds {
		if _, seen := res[dep.ID]; seen {
			continue
		}
		res[dep.ID] = nil
		if d == nil {
			res[dep.ID] = teardown.Permanent(ErrNoDependentsAPI)
			continue
		}
		id := dep.ID
		switch dep.Kind {
		case teardown.DependentVolume:
			work = append(work, d.reapOne(ctx, id, "delete volume "+id, d.deleteVolume, func() error {
				_, err := d.api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}, noRetry)
				return err
			}))
		case teardown.DependentInterface:
			work = append(work, d.reapOne(ctx, id, "delete network interface "+id, d.deleteInterface, func() error {
				_, err := d.api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(id)}, noRetry)
				return err
			}))
		case teardown.DependentAddress:
			work = append(work, d.reapOne(ctx, id, "release address "+id, d.releaseAddress, func() error {
				_, err := d.api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(id)}, noRetry)
				return err
			}))
		case teardown.DependentSpotRequest:
			spots = append(spots, id)
		default:
			res[id] = teardown.Permanent(fmt.Errorf("awsec2: unknown dependent kind %q for %s", dep.Kind, id))
		}
	}
	results := make([]map[string]error, len(work))
	fns := make([]func(), len(work))
	for i, w := range work {
		results[i] = map[string]error{}
		fns[i] = func() { w(results[i]) }
	}
	runAll(fns)
	for _, r := range results {
		maps.Copy(res, r)
	}
	for _, sir := range spots {
		res[sir] = dependentResult("cancel spot request "+sir, d.cancel(ctx, []string{sir}))
	}
	return res
}

// reapOne is one dependent's call under its bucket, storing the result.
func (d *dependents) reapOne(ctx context.Context, id, what string, l *rate.Limiter, call func() error) func(map[string]error) {
	return func(res map[string]error) {
		err := wait(ctx, l, 1)
		if err == nil {
			err = call()
			d.drainOn(err, l)
		}
		if classifyDependent(err) == depGone {
			res[id] = fmt.Errorf("awsec2: %s: %w: %w", what, teardown.ErrGone, err)
			return
		}
		res[id] = dependentResult("awsec2: "+what, err)
	}
}
