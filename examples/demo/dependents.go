package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
)

// What instances leave behind: some of the workspaces to delete get two
// extra volumes each (not deleted on termination) and an Elastic IP; an
// instance launched by a persistent spot request for a row that was never
// written would be relaunched by EC2 the moment it is terminated unless
// its request is cancelled first; and a volume left over by a deleted
// workspace lies about, attached to nothing. Every stop finishes its
// instance's dependents (awsec2.WithDependents), and the sweeper reaps the
// leftover (sweeper.WithDependents). The final table counts what is left.

// equipped is how many of the workspaces to delete get volumes and an
// Elastic IP.
const equipped = 3

// tags is the run's owner tag and resourceID as the resource-id tag.
func (d *demo) tags(resourceID string) []types.Tag {
	tags := []types.Tag{{Key: aws.String(workspaces.DefaultResourceTag), Value: aws.String(resourceID)}}
	for k, v := range d.owner {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return tags
}

// equip gives up to equipped of the workspaces to delete, outside skip,
// two volumes each and, on the embedded EC2, an Elastic IP; and leaves one
// more volume behind, attached to nothing, tagged with the last one's id.
func (d *demo) equip(ctx context.Context, trees []*tree, skip func(int) bool) error {
	n := 0
	for i, t := range trees {
		if skip(i) || n == equipped {
			continue
		}
		ws := t.nodes[0]
		desc, err := d.cloud.Client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{ws.instanceID}})
		if err != nil || len(desc.Reservations) == 0 || len(desc.Reservations[0].Instances) == 0 {
			return fmt.Errorf("describe %s: %v", ws.instanceID, err)
		}
		zone := aws.ToString(desc.Reservations[0].Instances[0].Placement.AvailabilityZone)
		for _, dev := range []string{"/dev/sdf", "/dev/sdg"} {
			vol, err := d.volume(ctx, zone, ws.id)
			if err != nil {
				return err
			}
			if _, err := d.cloud.Client.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(ws.instanceID), Device: aws.String(dev)}); err != nil {
				return fmt.Errorf("attach volume: %w", err)
			}
		}
		if d.cloud.Fake != nil {
			// moto keeps an address associated with a terminated instance.
			alloc, err := d.cloud.Client.AllocateAddress(ctx, &ec2.AllocateAddressInput{
				Domain:            types.DomainTypeVpc,
				TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeElasticIp, Tags: d.tags(ws.id)}},
			})
			if err != nil {
				return fmt.Errorf("allocate address: %w", err)
			}
			if _, err := d.cloud.Client.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: alloc.AllocationId, InstanceId: aws.String(ws.instanceID)}); err != nil {
				return fmt.Errorf("associate address: %w", err)
			}
		}
		n++
		if n == equipped {
			if _, err := d.volume(ctx, zone, ws.id); err != nil {
				return err
			}
		}
	}
	what := "two volumes each"
	if d.cloud.Fake != nil {
		what += " and an Elastic IP"
	}
	d.say("   %d workspaces to delete have %s, not deleted with their instance; one more volume lies detached", n, what)
	return nil
}

// volume creates a 1 GiB volume in zone tagged for resourceID.
func (d *demo) volume(ctx context.Context, zone, resourceID string) (string, error) {
	out, err := d.cloud.Client.CreateVolume(ctx, &ec2.CreateVolumeInput{
		AvailabilityZone:  aws.String(zone),
		Size:              aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: d.tags(resourceID)}},
	})
	if err != nil {
		return "", fmt.Errorf("create volume: %w", err)
	}
	return aws.ToString(out.VolumeId), nil
}

// launchSpot requests a persistent spot instance with the run's tags and
// the id of a row that is never written: a crash between launch and
// insert, which leaves a request EC2 keeps fulfilling.
func (d *demo) launchSpot(ctx context.Context) error {
	id := workspaces.NewID()
	out, err := d.cloud.Client.RequestSpotInstances(ctx, &ec2.RequestSpotInstancesInput{
		Type:                types.SpotInstanceTypePersistent,
		LaunchSpecification: &types.RequestSpotLaunchSpecification{ImageId: aws.String(workspaces.DefaultImageID), InstanceType: types.InstanceType(workspaces.DefaultInstanceType)},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeSpotInstancesRequest, Tags: d.tags(id)},
			{ResourceType: types.ResourceTypeInstance, Tags: d.tags(id)},
		},
	})
	if err != nil {
		return fmt.Errorf("request spot instance: %w", err)
	}
	d.say("   spot request %s (persistent) launched an instance for a row never written: terminated alone, it would come back",
		aws.ToString(out.SpotInstanceRequests[0].SpotInstanceRequestId))
	return nil
}

// dependentsLeft counts what carries the run's owner tag and outlived its
// use: volumes, Elastic IPs, network interfaces, and spot requests still
// open or active.
func (d *demo) dependentsLeft(ctx context.Context) (int, error) {
	filters := []types.Filter{{Name: aws.String("tag:" + ownerKey), Values: []string{d.owner[ownerKey]}}}
	n := 0
	vols, err := d.cloud.Client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: filters})
	if err != nil {
		return 0, fmt.Errorf("dependents: %w", err)
	}
	n += len(vols.Volumes)
	enis, err := d.cloud.Client.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: filters})
	if err != nil {
		return 0, fmt.Errorf("dependents: %w", err)
	}
	n += len(enis.NetworkInterfaces)
	if d.cloud.Fake != nil {
		addrs, err := d.cloud.Client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: filters})
		if err != nil {
			return 0, fmt.Errorf("dependents: %w", err)
		}
		n += len(addrs.Addresses)
		spots, err := d.cloud.Client.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{
			Filters: append(filters, types.Filter{Name: aws.String("state"), Values: []string{"open", "active"}}),
		})
		if err != nil {
			return 0, fmt.Errorf("dependents: %w", err)
		}
		n += len(spots.SpotInstanceRequests)
	}
	return n, nil
}
