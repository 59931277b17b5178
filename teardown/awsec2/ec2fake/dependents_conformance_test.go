package ec2fake_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/leakless/leakless/internal/mototest"
)

// The behaviours of volumes, Elastic IPs, network interfaces and spot
// requests that moto shares with EC2, checked on both (see backends).

var dependentScenarios = []struct {
	name string
	run  func(t *testing.T, b backend)
}{
	{"VolumeLifecycle", func(t *testing.T, b backend) {
		ctx := context.Background()
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		in := instance(t, b.api, id)
		zone := aws.ToString(in.Placement.AvailabilityZone)
		root := ""
		for _, m := range in.BlockDeviceMappings {
			if m.Ebs != nil && aws.ToBool(m.Ebs.DeleteOnTermination) {
				root = aws.ToString(m.Ebs.VolumeId)
			}
		}
		if root == "" {
			t.Fatalf("%s lists no root volume deleted on termination: %+v", id, in.BlockDeviceMappings)
		}
		created, err := b.api.CreateVolume(ctx, &ec2.CreateVolumeInput{
			AvailabilityZone:  aws.String(zone),
			Size:              aws.Int32(10),
			TagSpecifications: tagSpec(types.ResourceTypeVolume, map[string]string{"owner": "me"}),
		}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		vol := aws.ToString(created.VolumeId)
		if v := volume(t, b.api, vol); v.State != types.VolumeStateAvailable || aws.ToInt32(v.Size) != 10 || v.VolumeType != types.VolumeTypeGp2 || !maps.Equal(tagMap(v.Tags), map[string]string{"owner": "me"}) {
			t.Fatalf("new volume: state %s, size %d, type %s, tags %v; want available, 10, gp2 (CreateVolume's default), owner=me", v.State, aws.ToInt32(v.Size), v.VolumeType, tagMap(v.Tags))
		}
		typed, err := b.api.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(1), VolumeType: types.VolumeTypeSt1}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		if v := volume(t, b.api, aws.ToString(typed.VolumeId)); v.VolumeType != types.VolumeTypeSt1 {
			t.Fatalf("volume created as st1 is %s", v.VolumeType)
		}
		if _, err := b.api.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(id), Device: aws.String("/dev/sdf")}, noRetry); err != nil {
			t.Fatal(err)
		}
		v := volume(t, b.api, vol)
		if v.State != types.VolumeStateInUse || len(v.Attachments) != 1 || aws.ToString(v.Attachments[0].InstanceId) != id {
			t.Fatalf("attached volume: state %s, attachments %+v; want in-use on %s", v.State, v.Attachments, id)
		}
		if !slices.ContainsFunc(instance(t, b.api, id).BlockDeviceMappings, func(m types.InstanceBlockDeviceMapping) bool {
			return aws.ToString(m.DeviceName) == "/dev/sdf" && m.Ebs != nil && aws.ToString(m.Ebs.VolumeId) == vol
		}) {
			t.Fatalf("DescribeInstances does not map /dev/sdf to %s", vol)
		}
		_, err = b.api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)}, noRetry)
		if code, _ := apiError(t, err); code != "VolumeInUse" {
			t.Fatalf("delete of an attached volume: %s, want VolumeInUse", code)
		}
		found := describeVolumeIDs(t, b.api, []types.Filter{{Name: aws.String("tag:owner"), Values: []string{"me"}}})
		if !slices.Equal(found, []string{vol}) {
			t.Fatalf("tag:owner=me finds %v, want [%s]", found, vol)
		}

		if _, err := b.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, noRetry); err != nil {
			t.Fatal(err)
		}
		if st := states(t, b.api, id)[id]; st != "terminated" {
			t.Fatalf("instance %s, want terminated", st)
		}
		if v := volume(t, b.api, vol); v.State != types.VolumeStateAvailable || len(v.Attachments) != 0 {
			t.Fatalf("after termination the volume is %s with %d attachments, want available with none", v.State, len(v.Attachments))
		}
		if got := describeVolumeIDs(t, b.api, []types.Filter{{Name: aws.String("volume-id"), Values: []string{root}}}); len(got) != 0 {
			t.Fatalf("the root volume %s outlived its instance", root)
		}
		if _, err := b.api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)}, noRetry); err != nil {
			t.Fatalf("delete of the available volume: %v", err)
		}
		_, err = b.api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{vol}}, noRetry)
		if code, _ := apiError(t, err); code != "InvalidVolume.NotFound" {
			t.Fatalf("describe of a deleted volume: %s, want InvalidVolume.NotFound", code)
		}
		_, err = b.api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)}, noRetry)
		if code, msg := apiError(t, err); code != "InvalidVolume.NotFound" || msg != "The volume '"+vol+"' does not exist." {
			t.Fatalf("second delete: %s %q, want InvalidVolume.NotFound naming %s", code, msg, vol)
		}
	}},
	{"AddressLifecycle", func(t *testing.T, b backend) {
		ctx := context.Background()
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		alloc, err := b.api.AllocateAddress(ctx, &ec2.AllocateAddressInput{
			Domain:            types.DomainTypeVpc,
			TagSpecifications: tagSpec(types.ResourceTypeElasticIp, map[string]string{"owner": "me"}),
		}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		allocID, ip := aws.ToString(alloc.AllocationId), aws.ToString(alloc.PublicIp)
		a := address(t, b.api, allocID)
		if aws.ToString(a.PublicIp) != ip || a.AssociationId != nil || !maps.Equal(tagMap(a.Tags), map[string]string{"owner": "me"}) {
			t.Fatalf("new address %+v, want %s unassociated with owner=me", a, ip)
		}
		assoc, err := b.api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(allocID), InstanceId: aws.String(id)}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		a = address(t, b.api, allocID)
		if aws.ToString(a.InstanceId) != id || aws.ToString(a.AssociationId) == "" || aws.ToString(a.AssociationId) != aws.ToString(assoc.AssociationId) {
			t.Fatalf("associated address: instance %q, association %q; want %s and %q", aws.ToString(a.InstanceId), aws.ToString(a.AssociationId), id, aws.ToString(assoc.AssociationId))
		}
		in := instance(t, b.api, id)
		if aws.ToString(in.PublicIpAddress) != ip {
			t.Fatalf("instance public IP %q, want the Elastic IP %s", aws.ToString(in.PublicIpAddress), ip)
		}
		if !slices.ContainsFunc(in.NetworkInterfaces, func(n types.InstanceNetworkInterface) bool {
			return n.Association != nil && aws.ToString(n.Association.PublicIp) == ip
		}) {
			t.Fatalf("no network interface of %s is associated with %s", id, ip)
		}
		found := describeAddressIDs(t, b.api, []types.Filter{{Name: aws.String("instance-id"), Values: []string{id}}})
		if !slices.Equal(found, []string{allocID}) {
			t.Fatalf("instance-id=%s finds %v, want [%s]", id, found, allocID)
		}

		spare, err := b.api.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: spare.AllocationId}, noRetry); err != nil {
			t.Fatalf("release of an unassociated address: %v", err)
		}
		_, err = b.api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{aws.ToString(spare.AllocationId)}}, noRetry)
		if code, _ := apiError(t, err); code != "InvalidAllocationID.NotFound" {
			t.Fatalf("describe of a released address: %s, want InvalidAllocationID.NotFound", code)
		}
		_, err = b.api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: spare.AllocationId}, noRetry)
		if code, _ := apiError(t, err); code != "InvalidAllocationID.NotFound" {
			t.Fatalf("second release: %s, want InvalidAllocationID.NotFound", code)
		}
	}},
	{"InterfaceLifecycle", func(t *testing.T, b backend) {
		ctx := context.Background()
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		in := instance(t, b.api, id)
		if len(in.NetworkInterfaces) != 1 || in.NetworkInterfaces[0].Attachment == nil || aws.ToInt32(in.NetworkInterfaces[0].Attachment.DeviceIndex) != 0 {
			t.Fatalf("instance interfaces %+v, want one primary at device index 0", in.NetworkInterfaces)
		}
		created, err := b.api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{
			SubnetId:          in.SubnetId,
			TagSpecifications: tagSpec(types.ResourceTypeNetworkInterface, map[string]string{"owner": "me"}),
		}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		eni := aws.ToString(created.NetworkInterface.NetworkInterfaceId)
		n := netInterface(t, b.api, eni)
		if n.Status != types.NetworkInterfaceStatusAvailable || !maps.Equal(tagMap(n.TagSet), map[string]string{"owner": "me"}) {
			t.Fatalf("new interface: %s, tags %v; want available with owner=me", n.Status, tagMap(n.TagSet))
		}
		if _, err := b.api.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{
			NetworkInterfaceId: aws.String(eni), InstanceId: aws.String(id), DeviceIndex: aws.Int32(1),
		}, noRetry); err != nil {
			t.Fatal(err)
		}
		n = netInterface(t, b.api, eni)
		if n.Status != types.NetworkInterfaceStatusInUse || n.Attachment == nil || aws.ToString(n.Attachment.InstanceId) != id {
			t.Fatalf("attached interface: %s, attachment %+v; want in-use on %s", n.Status, n.Attachment, id)
		}
		if got := len(instance(t, b.api, id).NetworkInterfaces); got != 2 {
			t.Fatalf("instance lists %d interfaces, want 2", got)
		}
		found := describeInterfaceIDs(t, b.api, []types.Filter{{Name: aws.String("tag:owner"), Values: []string{"me"}}})
		if !slices.Equal(found, []string{eni}) {
			t.Fatalf("tag:owner=me finds %v, want [%s]", found, eni)
		}

		spare, err := b.api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: in.SubnetId}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		spareID := aws.ToString(spare.NetworkInterface.NetworkInterfaceId)
		if _, err := b.api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(spareID)}, noRetry); err != nil {
			t.Fatalf("delete of an available interface: %v", err)
		}
		_, err = b.api.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{spareID}}, noRetry)
		if code, _ := apiError(t, err); code != "InvalidNetworkInterfaceID.NotFound" {
			t.Fatalf("describe of a deleted interface: %s, want InvalidNetworkInterfaceID.NotFound", code)
		}
		_, err = b.api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(spareID)}, noRetry)
		if code, msg := apiError(t, err); code != "InvalidNetworkInterfaceID.NotFound" || msg != "The networkInterface ID '"+spareID+"' does not exist" {
			t.Fatalf("second delete: %s %q, want InvalidNetworkInterfaceID.NotFound naming %s", code, msg, spareID)
		}
	}},
	{"SpotRequests", func(t *testing.T, b backend) {
		ctx := context.Background()
		ids := map[types.SpotInstanceType]string{}
		for _, typ := range []types.SpotInstanceType{types.SpotInstanceTypePersistent, types.SpotInstanceTypeOneTime} {
			out, err := b.api.RequestSpotInstances(ctx, &ec2.RequestSpotInstancesInput{
				Type:                typ,
				SpotPrice:           aws.String("0.05"),
				LaunchSpecification: &types.RequestSpotLaunchSpecification{ImageId: aws.String(mototest.ImageID), InstanceType: types.InstanceTypeT3Micro},
				TagSpecifications:   tagSpec(types.ResourceTypeSpotInstancesRequest, map[string]string{"owner": "me"}),
			}, noRetry)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.SpotInstanceRequests) != 1 {
				t.Fatalf("%s: %d requests answered, want 1", typ, len(out.SpotInstanceRequests))
			}
			ids[typ] = aws.ToString(out.SpotInstanceRequests[0].SpotInstanceRequestId)
		}
		desc, err := b.api.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{
			Filters: []types.Filter{{Name: aws.String("tag:owner"), Values: []string{"me"}}},
		}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		if len(desc.SpotInstanceRequests) != 2 {
			t.Fatalf("tag:owner=me finds %d requests, want 2", len(desc.SpotInstanceRequests))
		}
		for _, r := range desc.SpotInstanceRequests {
			if ids[r.Type] != aws.ToString(r.SpotInstanceRequestId) || r.State != types.SpotInstanceStateActive || aws.ToString(r.InstanceId) == "" {
				t.Errorf("request %s (%s): state %s, instance %q; want active with an instance", aws.ToString(r.SpotInstanceRequestId), r.Type, r.State, aws.ToString(r.InstanceId))
				continue
			}
			if st := states(t, b.api, aws.ToString(r.InstanceId))[aws.ToString(r.InstanceId)]; st != "running" {
				t.Errorf("the %s request's instance is %s, want running", r.Type, st)
			}
		}
		out, err := b.api.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{ids[types.SpotInstanceTypePersistent]}}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.CancelledSpotInstanceRequests) != 1 || out.CancelledSpotInstanceRequests[0].State != types.CancelSpotInstanceRequestStateCancelled {
			t.Fatalf("cancel answered %+v, want the request cancelled", out.CancelledSpotInstanceRequests)
		}
	}},
	{"DependentsDryRun", func(t *testing.T, b backend) { dryRunDependents(t, b, false) }},
}

// dryRunDependents makes every new action with DryRun set and checks that
// each answers DryRunOperation and changes nothing. moto ignores DryRun on
// DescribeVolumes and DescribeSpotInstanceRequests; those two are made
// only when all is set.
func dryRunDependents(t *testing.T, b backend, all bool) {
	ctx := context.Background()
	dry := aws.Bool(true)
	id := mototest.RunInstances(t, b.api, 1, nil)[0]
	zone := aws.ToString(instance(t, b.api, id).Placement.AvailabilityZone)
	subnet := instance(t, b.api, id).SubnetId
	vol, err := b.api.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(1)}, noRetry)
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := b.api.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc}, noRetry)
	if err != nil {
		t.Fatal(err)
	}
	eni, err := b.api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: subnet}, noRetry)
	if err != nil {
		t.Fatal(err)
	}
	spot, err := b.api.RequestSpotInstances(ctx, &ec2.RequestSpotInstancesInput{
		Type: types.SpotInstanceTypePersistent, LaunchSpecification: &types.RequestSpotLaunchSpecification{ImageId: aws.String(mototest.ImageID)},
	}, noRetry)
	if err != nil {
		t.Fatal(err)
	}
	sir := aws.ToString(spot.SpotInstanceRequests[0].SpotInstanceRequestId)
	for _, c := range []struct {
		action string
		call   func() error
	}{
		{"CreateVolume", func() error {
			_, err := b.api.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(1), DryRun: dry}, noRetry)
			return err
		}},
		{"AttachVolume", func() error {
			_, err := b.api.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: vol.VolumeId, InstanceId: aws.String(id), Device: aws.String("/dev/sdg"), DryRun: dry}, noRetry)
			return err
		}},
		{"DescribeVolumes", func() error {
			_, err := b.api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{DryRun: dry}, noRetry)
			return err
		}},
		{"DeleteVolume", func() error {
			_, err := b.api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: vol.VolumeId, DryRun: dry}, noRetry)
			return err
		}},
		{"AllocateAddress", func() error {
			_, err := b.api.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc, DryRun: dry}, noRetry)
			return err
		}},
		{"AssociateAddress", func() error {
			_, err := b.api.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: alloc.AllocationId, InstanceId: aws.String(id), DryRun: dry}, noRetry)
			return err
		}},
		{"DescribeAddresses", func() error {
			_, err := b.api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{DryRun: dry}, noRetry)
			return err
		}},
		{"ReleaseAddress", func() error {
			_, err := b.api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: alloc.AllocationId, DryRun: dry}, noRetry)
			return err
		}},
		{"CreateNetworkInterface", func() error {
			_, err := b.api.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: subnet, DryRun: dry}, noRetry)
			return err
		}},
		{"DescribeNetworkInterfaces", func() error {
			_, err := b.api.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{DryRun: dry}, noRetry)
			return err
		}},
		{"DeleteNetworkInterface", func() error {
			_, err := b.api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: eni.NetworkInterface.NetworkInterfaceId, DryRun: dry}, noRetry)
			return err
		}},
		{"RequestSpotInstances", func() error {
			_, err := b.api.RequestSpotInstances(ctx, &ec2.RequestSpotInstancesInput{
				LaunchSpecification: &types.RequestSpotLaunchSpecification{ImageId: aws.String(mototest.ImageID)}, DryRun: dry,
			}, noRetry)
			return err
		}},
		{"DescribeSpotInstanceRequests", func() error {
			_, err := b.api.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{DryRun: dry}, noRetry)
			return err
		}},
		{"CancelSpotInstanceRequests", func() error {
			_, err := b.api.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{sir}, DryRun: dry}, noRetry)
			return err
		}},
	} {
		if !all && (c.action == "DescribeVolumes" || c.action == "DescribeSpotInstanceRequests") {
			continue
		}
		err := c.call()
		var re *smithyhttp.ResponseError
		if code := codeOf(err); code != "DryRunOperation" || !errors.As(err, &re) || re.HTTPStatusCode() != 412 {
			t.Errorf("%s with DryRun: %v, want DryRunOperation with HTTP 412", c.action, err)
		}
	}
	// Nothing changed.
	if v := volume(t, b.api, aws.ToString(vol.VolumeId)); v.State != types.VolumeStateAvailable {
		t.Errorf("volume %s after dry runs, want available", v.State)
	}
	if a := address(t, b.api, aws.ToString(alloc.AllocationId)); a.AssociationId != nil {
		t.Errorf("a dry-run AssociateAddress associated %s", aws.ToString(a.AssociationId))
	}
	if n := netInterface(t, b.api, aws.ToString(eni.NetworkInterface.NetworkInterfaceId)); n.Status != types.NetworkInterfaceStatusAvailable {
		t.Errorf("interface %s after dry runs, want available", n.Status)
	}
	desc, err := b.api.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{sir}}, noRetry)
	if err != nil || len(desc.SpotInstanceRequests) != 1 || desc.SpotInstanceRequests[0].State != types.SpotInstanceStateActive {
		t.Errorf("spot request after dry runs: %+v, %v; want it active", desc, err)
	}
}

func TestDependentsConformance(t *testing.T) {
	for _, sc := range dependentScenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, be := range backends {
				t.Run(be.name, func(t *testing.T) {
					t.Parallel()
					sc.run(t, be.open(t))
				})
			}
		})
	}
}

// codeOf returns err's EC2 code, or "".
func codeOf(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func tagSpec(typ types.ResourceType, tags map[string]string) []types.TagSpecification {
	spec := types.TagSpecification{ResourceType: typ}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		spec.Tags = append(spec.Tags, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return []types.TagSpecification{spec}
}

func tagMap(tags []types.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		out[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}

func instance(t *testing.T, c *ec2.Client, id string) types.Instance {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeInstances %s: %v", id, err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("DescribeInstances %s: %d reservations", id, len(out.Reservations))
	}
	return out.Reservations[0].Instances[0]
}

func volume(t *testing.T, c *ec2.Client, id string) types.Volume {
	t.Helper()
	out, err := c.DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if err != nil || len(out.Volumes) != 1 {
		t.Fatalf("DescribeVolumes %s: %v (%d volumes)", id, err, len(out.Volumes))
	}
	return out.Volumes[0]
}

func address(t *testing.T, c *ec2.Client, allocID string) types.Address {
	t.Helper()
	out, err := c.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{AllocationIds: []string{allocID}})
	if err != nil || len(out.Addresses) != 1 {
		t.Fatalf("DescribeAddresses %s: %v (%d addresses)", allocID, err, len(out.Addresses))
	}
	return out.Addresses[0]
}

func netInterface(t *testing.T, c *ec2.Client, id string) types.NetworkInterface {
	t.Helper()
	out, err := c.DescribeNetworkInterfaces(context.Background(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
	if err != nil || len(out.NetworkInterfaces) != 1 {
		t.Fatalf("DescribeNetworkInterfaces %s: %v (%d interfaces)", id, err, len(out.NetworkInterfaces))
	}
	return out.NetworkInterfaces[0]
}

func describeVolumeIDs(t *testing.T, c *ec2.Client, filters []types.Filter) []string {
	t.Helper()
	var ids []string
	p := ec2.NewDescribeVolumesPaginator(c, &ec2.DescribeVolumesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("DescribeVolumes: %v", err)
		}
		for _, v := range page.Volumes {
			ids = append(ids, aws.ToString(v.VolumeId))
		}
	}
	return ids
}

func describeAddressIDs(t *testing.T, c *ec2.Client, filters []types.Filter) []string {
	t.Helper()
	out, err := c.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{Filters: filters})
	if err != nil {
		t.Fatalf("DescribeAddresses: %v", err)
	}
	var ids []string
	for _, a := range out.Addresses {
		ids = append(ids, aws.ToString(a.AllocationId))
	}
	return ids
}

func describeInterfaceIDs(t *testing.T, c *ec2.Client, filters []types.Filter) []string {
	t.Helper()
	var ids []string
	p := ec2.NewDescribeNetworkInterfacesPaginator(c, &ec2.DescribeNetworkInterfacesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("DescribeNetworkInterfaces: %v", err)
		}
		for _, n := range page.NetworkInterfaces {
			ids = append(ids, aws.ToString(n.NetworkInterfaceId))
		}
	}
	return ids
}
