package ec2fake_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// What an instance leaves behind, where moto and EC2 differ: the fake
// follows EC2.

// newClock returns a settable clock (fake_test.go's) at a fixed time.
func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestDependentsDryRunEveryAction(t *testing.T) {
	srv, api := newFake(t)
	dryRunDependents(t, backend{api, srv.URL(), srv.Client()}, true)
}

func TestVolumesDetachOnlyAfterTheDelay(t *testing.T) {
	clk := newClock()
	_, api := newFake(t, ec2fake.WithClock(clk.Now), ec2fake.WithDetachDelay(30*time.Second))
	ctx := context.Background()
	out, err := api.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(mototest.ImageID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(20), DeleteOnTermination: aws.Bool(false)}}},
		TagSpecifications:   tagSpec(types.ResourceTypeVolume, map[string]string{"owner": "me"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	var kept, root string
	for _, m := range instance(t, api, id).BlockDeviceMappings {
		switch aws.ToString(m.DeviceName) {
		case "/dev/sdf":
			kept = aws.ToString(m.Ebs.VolumeId)
			if aws.ToBool(m.Ebs.DeleteOnTermination) {
				t.Fatalf("/dev/sdf is deleted on termination, want kept")
			}
		case "/dev/xvda":
			root = aws.ToString(m.Ebs.VolumeId)
		}
	}
	if kept == "" || root == "" {
		t.Fatalf("mappings %+v, want /dev/xvda and /dev/sdf", instance(t, api, id).BlockDeviceMappings)
	}
	if v := volume(t, api, kept); aws.ToInt32(v.Size) != 20 || tagMap(v.Tags)["owner"] != "me" {
		t.Fatalf("mapped volume: %d GiB, tags %v; want 20 GiB tagged by the TagSpecification", aws.ToInt32(v.Size), tagMap(v.Tags))
	}
	if _, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(29 * time.Second)
	v := volume(t, api, kept)
	if v.State != types.VolumeStateInUse || len(v.Attachments) != 1 || v.Attachments[0].State != types.VolumeAttachmentStateDetaching {
		t.Fatalf("while the instance shuts down the volume is %s %+v, want in-use, detaching", v.State, v.Attachments)
	}
	_, err = api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(kept)}, noRetry)
	if code, msg := apiError(t, err); code != "VolumeInUse" || !strings.Contains(msg, id) {
		t.Fatalf("delete while detaching: %s %q, want VolumeInUse naming %s", code, msg, id)
	}

	clk.Advance(time.Second)
	if v := volume(t, api, kept); v.State != types.VolumeStateAvailable {
		t.Fatalf("after the delay the volume is %s, want available", v.State)
	}
	if got := describeVolumeIDs(t, api, []types.Filter{{Name: aws.String("volume-id"), Values: []string{root}}}); len(got) != 0 {
		t.Fatalf("root volume %s still exists", root)
	}
	if n := len(instance(t, api, id).BlockDeviceMappings); n != 0 {
		t.Fatalf("the terminated instance still maps %d volumes", n)
	}
	if _, err := api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(kept)}, noRetry); err != nil {
		t.Fatal(err)
	}
}

func TestInterfacesAndAddressesAreFreedAfterTheDelay(t *testing.T) {
	clk := newClock()
	srv, api := newFake(t, ec2fake.WithClock(clk.Now), ec2fake.WithDetachDelay(time.Minute))
	ctx := context.Background()
	id := srv.Launch(ec2fake.Instance{})
	eni := srv.AddNetworkInterface(ec2fake.NetworkInterface{InstanceID: id, Tags: map[string]string{"owner": "me"}})
	onInstance := srv.AddAddress(ec2fake.Address{InstanceID: id})
	onENI := srv.AddAddress(ec2fake.Address{NetworkInterfaceID: eni})

	in := instance(t, api, id)
	if len(in.NetworkInterfaces) != 2 || aws.ToString(in.PublicIpAddress) == "" {
		t.Fatalf("instance interfaces %d, public IP %q; want 2 and the Elastic IP", len(in.NetworkInterfaces), aws.ToString(in.PublicIpAddress))
	}
	for _, n := range in.NetworkInterfaces {
		wantDOT := aws.ToInt32(n.Attachment.DeviceIndex) == 0
		if aws.ToBool(n.Attachment.DeleteOnTermination) != wantDOT || n.Association == nil || aws.ToString(n.Association.IpOwnerId) != "123456789012" {
			t.Errorf("interface %s: index %d, delete on termination %v, association %+v", aws.ToString(n.NetworkInterfaceId),
				aws.ToInt32(n.Attachment.DeviceIndex), aws.ToBool(n.Attachment.DeleteOnTermination), n.Association)
		}
	}
	_, err := api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(eni)}, noRetry)
	if code, msg := apiError(t, err); code != "InvalidParameterValue" || msg != "Network interface '"+eni+"' is currently in use." {
		t.Fatalf("delete of an attached interface: %s %q, want EC2's InvalidParameterValue", code, msg)
	}
	_, err = api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(onInstance)}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidIPAddress.InUse" {
		t.Fatalf("release of an associated address: %s, want InvalidIPAddress.InUse", code)
	}

	if _, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Second)
	if n := netInterface(t, api, eni); n.Status != types.NetworkInterfaceStatusInUse {
		t.Fatalf("interface %s while the instance shuts down, want in-use", n.Status)
	}
	_, err = api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(onInstance)}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidIPAddress.InUse" {
		t.Fatalf("release while the instance shuts down: %s, want InvalidIPAddress.InUse", code)
	}

	clk.Advance(time.Second)
	if n := netInterface(t, api, eni); n.Status != types.NetworkInterfaceStatusAvailable || n.Attachment != nil || n.Association == nil {
		t.Fatalf("after the delay the interface is %s (attachment %+v, association %+v), want available and still holding its address", n.Status, n.Attachment, n.Association)
	}
	if a := address(t, api, onInstance); a.AssociationId != nil {
		t.Fatalf("the primary interface is gone but its address is still associated: %s", aws.ToString(a.AssociationId))
	}
	if _, err := api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(onInstance)}); err != nil {
		t.Fatal(err)
	}
	_, err = api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(onENI)}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidIPAddress.InUse" {
		t.Fatalf("release of the address on the freed interface: %s, want InvalidIPAddress.InUse", code)
	}
	if _, err := api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(eni)}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(onENI)}); err != nil {
		t.Fatalf("release after its interface was deleted: %v", err)
	}
	if n := len(srv.Addresses()) + len(srv.NetworkInterfaces()); n != 0 {
		t.Fatalf("%d addresses and interfaces left, want none", n)
	}
}

func TestPersistentSpotRequestRelaunchesUnlessCancelled(t *testing.T) {
	clk := newClock()
	srv, api := newFake(t, ec2fake.WithClock(clk.Now), ec2fake.WithDetachDelay(10*time.Second))
	ctx := context.Background()
	out, err := api.RequestSpotInstances(ctx, &ec2.RequestSpotInstancesInput{
		Type:                types.SpotInstanceTypePersistent,
		LaunchSpecification: &types.RequestSpotLaunchSpecification{ImageId: aws.String(mototest.ImageID)},
		TagSpecifications:   tagSpec(types.ResourceTypeSpotInstancesRequest, map[string]string{"owner": "me"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := out.SpotInstanceRequests[0]; r.State != types.SpotInstanceStateOpen || aws.ToString(r.Status.Code) != "pending-evaluation" {
		t.Fatalf("RequestSpotInstances answered %s/%s, want EC2's open/pending-evaluation", r.State, aws.ToString(r.Status.Code))
	}
	sir := aws.ToString(out.SpotInstanceRequests[0].SpotInstanceRequestId)
	first := spotRequest(t, api, sir)
	i1 := aws.ToString(first.InstanceId)
	if in := instance(t, api, i1); aws.ToString(in.SpotInstanceRequestId) != sir || in.InstanceLifecycle != types.InstanceLifecycleTypeSpot {
		t.Fatalf("spot instance describes request %q, lifecycle %q; want %s, spot", aws.ToString(in.SpotInstanceRequestId), in.InstanceLifecycle, sir)
	}

	if _, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{i1}}); err != nil {
		t.Fatal(err)
	}
	if r := spotRequest(t, api, sir); r.State != types.SpotInstanceStateOpen || aws.ToString(r.Status.Code) != "instance-terminated-by-user" {
		t.Fatalf("after its instance was terminated the request is %s/%s, want open/instance-terminated-by-user", r.State, aws.ToString(r.Status.Code))
	}
	clk.Advance(10 * time.Second)
	r := spotRequest(t, api, sir)
	i2 := aws.ToString(r.InstanceId)
	if r.State != types.SpotInstanceStateActive || i2 == "" || i2 == i1 {
		t.Fatalf("the persistent request is %s with instance %q, want active with a replacement for %s", r.State, i2, i1)
	}
	if st := states(t, api, i2)[i2]; st != "running" {
		t.Fatalf("replacement is %s, want running", st)
	}

	// Cancelled first, the request launches nothing when its instance goes.
	c, err := api.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{sir}})
	if err != nil {
		t.Fatal(err)
	}
	if c.CancelledSpotInstanceRequests[0].State != types.CancelSpotInstanceRequestStateCancelled {
		t.Fatalf("cancel answered %s", c.CancelledSpotInstanceRequests[0].State)
	}
	if r := spotRequest(t, api, sir); r.State != types.SpotInstanceStateCancelled || aws.ToString(r.Status.Code) != "request-canceled-and-instance-running" {
		t.Fatalf("cancelled request is %s/%s", r.State, aws.ToString(r.Status.Code))
	}
	if _, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{i2}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if r := spotRequest(t, api, sir); r.State != types.SpotInstanceStateCancelled || aws.ToString(r.InstanceId) != i2 {
		t.Fatalf("request %s with instance %q, want still cancelled with %s", r.State, aws.ToString(r.InstanceId), i2)
	}
	live := 0
	for _, in := range srv.Instances() {
		if in.State != ec2fake.Terminated {
			live++
		}
	}
	if live != 0 {
		t.Fatalf("%d instances running, want none", live)
	}
}

func TestOneTimeSpotRequestCloses(t *testing.T) {
	srv, api := newFake(t)
	sir, id := srv.RequestSpot(ec2fake.SpotRequest{Tags: map[string]string{"owner": "me"}})
	if _, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if r := spotRequest(t, api, sir); r.State != types.SpotInstanceStateClosed || r.Type != types.SpotInstanceTypeOneTime {
		t.Fatalf("one-time request is %s (%s) after its instance was terminated, want closed", r.State, r.Type)
	}
	if n := len(srv.Instances()); n != 1 {
		t.Fatalf("%d instances, want the one: a one-time request launches no replacement", n)
	}
}

func TestUnknownSpotRequestIsNotFound(t *testing.T) {
	_, api := newFake(t)
	ctx := context.Background()
	_, err := api.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{"sir-0000dead"}}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidSpotInstanceRequestID.NotFound" {
		t.Fatalf("describe: %s, want InvalidSpotInstanceRequestID.NotFound", code)
	}
	_, err = api.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{"sir-0000dead"}}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidSpotInstanceRequestID.NotFound" {
		t.Fatalf("cancel: %s, want InvalidSpotInstanceRequestID.NotFound", code)
	}
}

func TestDeleteBucketsAreEC2s(t *testing.T) {
	srv, api := newFake(t, ec2fake.WithLimits(ec2fake.EC2Limits()))
	ctx := context.Background()
	for i := range 100 {
		_, err := api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String("vol-0000000000000dead")}, noRetry)
		if code, _ := apiError(t, err); code != "InvalidVolume.NotFound" {
			t.Fatalf("call %d: %s, want InvalidVolume.NotFound: the bucket holds 100", i+1, code)
		}
	}
	_, err := api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String("vol-0000000000000dead")}, noRetry)
	if code, _ := apiError(t, err); code != "RequestLimitExceeded" {
		t.Fatalf("call 101: %s, want RequestLimitExceeded", code)
	}
	// Each action has its own bucket.
	_, err = api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String("eipalloc-0000000000000dead")}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidAllocationID.NotFound" {
		t.Fatalf("ReleaseAddress after 101 DeleteVolume calls: %s, want InvalidAllocationID.NotFound", code)
	}
	if n := srv.Calls("DeleteVolume"); n != 101 {
		t.Fatalf("%d DeleteVolume calls counted, want 101", n)
	}
}

func TestTagConditionGovernsDependents(t *testing.T) {
	srv, api := newFake(t, ec2fake.WithTagCondition("owner", "me"))
	ctx := context.Background()
	theirs := srv.AddVolume(ec2fake.Volume{Tags: map[string]string{"owner": "them"}})
	ours := srv.AddVolume(ec2fake.Volume{Tags: map[string]string{"owner": "me"}})
	_, err := api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(theirs)}, noRetry)
	if code, _ := apiError(t, err); code != "UnauthorizedOperation" {
		t.Fatalf("delete of another owner's volume: %s, want UnauthorizedOperation", code)
	}
	if _, err := api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(ours)}); err != nil {
		t.Fatal(err)
	}
	eni := srv.AddNetworkInterface(ec2fake.NetworkInterface{})
	_, err = api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(eni)}, noRetry)
	if code, _ := apiError(t, err); code != "UnauthorizedOperation" {
		t.Fatalf("delete of an untagged interface: %s, want UnauthorizedOperation", code)
	}
	sir, _ := srv.RequestSpot(ec2fake.SpotRequest{Type: ec2fake.SpotPersistent})
	_, err = api.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{sir}}, noRetry)
	if code, _ := apiError(t, err); code != "UnauthorizedOperation" {
		t.Fatalf("cancel of an untagged request: %s, want UnauthorizedOperation", code)
	}
	if n := len(srv.Volumes()); n != 2 { // theirs and the spot instance's root
		t.Fatalf("%d volumes, want 2", n)
	}
}

func TestSceneSettersShowInDescribeInstances(t *testing.T) {
	srv, api := newFake(t)
	id := srv.Launch(ec2fake.Instance{})
	vol := srv.AddVolume(ec2fake.Volume{InstanceID: id, Tags: map[string]string{"owner": "me"}})
	alloc := srv.AddAddress(ec2fake.Address{InstanceID: id})
	in := instance(t, api, id)
	if len(in.BlockDeviceMappings) != 1 || aws.ToString(in.BlockDeviceMappings[0].Ebs.VolumeId) != vol || aws.ToBool(in.BlockDeviceMappings[0].Ebs.DeleteOnTermination) {
		t.Fatalf("mappings %+v, want %s kept on termination", in.BlockDeviceMappings, vol)
	}
	var ip string
	for _, a := range srv.Addresses() {
		if a.AllocationID == alloc {
			ip = a.PublicIP
			if a.InstanceID != id {
				t.Fatalf("address on %q, want %s", a.InstanceID, id)
			}
		}
	}
	if aws.ToString(in.PublicIpAddress) != ip {
		t.Fatalf("public IP %q, want %s", aws.ToString(in.PublicIpAddress), ip)
	}
	if v := srv.Volumes(); len(v) != 1 || v[0].State != ec2fake.VolumeInUse || v[0].InstanceID != id {
		t.Fatalf("volumes %+v", v)
	}
}

func spotRequest(t *testing.T, c *ec2.Client, id string) types.SpotInstanceRequest {
	t.Helper()
	out, err := c.DescribeSpotInstanceRequests(context.Background(), &ec2.DescribeSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{id}})
	if err != nil || len(out.SpotInstanceRequests) != 1 {
		t.Fatalf("DescribeSpotInstanceRequests %s: %v", id, err)
	}
	return out.SpotInstanceRequests[0]
}

// CreateVolume takes EC2's volume types and refuses any other, as EC2 does
// (moto takes any string).
func TestCreateVolumeRefusesAnUnknownType(t *testing.T) {
	_, api := newFake(t)
	_, err := api.CreateVolume(context.Background(), &ec2.CreateVolumeInput{
		AvailabilityZone: aws.String(ec2fake.DefaultZone), Size: aws.Int32(1), VolumeType: types.VolumeType("gp9")}, noRetry)
	if codeOf(err) != "InvalidParameterValue" {
		t.Fatalf("CreateVolume of type gp9: %v, want InvalidParameterValue", err)
	}
}
