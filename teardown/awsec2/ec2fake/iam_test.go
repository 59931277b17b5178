package ec2fake_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// unauthorized fails the test unless err is UnauthorizedOperation with
// HTTP 403 and a message naming none of ids.
func unauthorized(t *testing.T, err error, ids ...string) {
	t.Helper()
	code, msg := apiError(t, err)
	var re *smithyhttp.ResponseError
	if code != "UnauthorizedOperation" || !errors.As(err, &re) || re.HTTPStatusCode() != 403 {
		t.Fatalf("got %v, want UnauthorizedOperation with HTTP 403", err)
	}
	if !strings.HasPrefix(msg, "You are not authorized to perform this operation. User: ") || !strings.Contains(msg, "Encoded authorization failure message: ") {
		t.Fatalf("message %q is not EC2's", msg)
	}
	for _, id := range ids {
		if strings.Contains(msg, id) {
			t.Fatalf("message %q names %s; EC2's names no instance", msg, id)
		}
	}
}

func TestTagConditionRefusesTheWholeCall(t *testing.T) {
	owned := map[string]string{"owner": "blue"}
	for _, c := range []struct {
		action string
		call   func(api *ec2.Client, ids []string) error
	}{
		{"TerminateInstances", func(api *ec2.Client, ids []string) error {
			_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids}, noRetry)
			return err
		}},
		{"StopInstances", func(api *ec2.Client, ids []string) error {
			_, err := api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: ids}, noRetry)
			return err
		}},
	} {
		t.Run(c.action, func(t *testing.T) {
			srv, api := newFake(t, ec2fake.WithTagCondition("owner", "blue"))
			a := srv.Launch(ec2fake.Instance{Tags: owned})
			other := srv.Launch(ec2fake.Instance{Tags: map[string]string{"owner": "green"}})
			untagged := srv.Launch(ec2fake.Instance{})
			b := srv.Launch(ec2fake.Instance{Tags: owned})

			unauthorized(t, c.call(api, []string{a, other, b}), a, other, b)
			unauthorized(t, c.call(api, []string{untagged, a}), untagged, a)
			for _, in := range srv.Instances() {
				if in.State != ec2fake.Running {
					t.Errorf("%s is %s after refused calls, want running", in.ID, in.State)
				}
			}
			if err := c.call(api, []string{a, b}); err != nil {
				t.Fatalf("%s of tagged instances: %v", c.action, err)
			}
		})
	}
}

func TestTagConditionOnModifyInstanceAttribute(t *testing.T) {
	srv, api := newFake(t, ec2fake.WithTagCondition("owner", "blue"))
	id := srv.Launch(ec2fake.Instance{Tags: map[string]string{"owner": "green"}})
	_, err := api.ModifyInstanceAttribute(context.Background(), &ec2.ModifyInstanceAttributeInput{
		InstanceId:            aws.String(id),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)},
	}, noRetry)
	unauthorized(t, err, id)
	if in, _ := srv.Instance(id); in.Protected {
		t.Fatalf("%s is protected after a refused call", id)
	}
}

func TestTagConditionsAllHold(t *testing.T) {
	srv, api := newFake(t, ec2fake.WithTagCondition("owner", "blue"), ec2fake.WithTagCondition("team", "x"))
	half := srv.Launch(ec2fake.Instance{Tags: map[string]string{"owner": "blue"}})
	both := srv.Launch(ec2fake.Instance{Tags: map[string]string{"owner": "blue", "team": "x"}})
	_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{half}}, noRetry)
	unauthorized(t, err, half)
	if _, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{both}}, noRetry); err != nil {
		t.Fatalf("terminate with both tags: %v", err)
	}
}

func TestTagConditionAfterNotFound(t *testing.T) {
	srv, api := newFake(t, ec2fake.WithTagCondition("owner", "blue"))
	untagged := srv.Launch(ec2fake.Instance{})
	_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{untagged, "i-0000000000000dead"}}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidInstanceID.NotFound" {
		t.Fatalf("code %s, want InvalidInstanceID.NotFound: unknown ids are answered first", code)
	}
}

func TestDryRunUnderTagCondition(t *testing.T) {
	srv, api := newFake(t, ec2fake.WithTagCondition("owner", "blue"))
	tagged := srv.Launch(ec2fake.Instance{Tags: map[string]string{"owner": "blue"}})
	untagged := srv.Launch(ec2fake.Instance{})
	dry := aws.Bool(true)

	_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{tagged, untagged}, DryRun: dry}, noRetry)
	unauthorized(t, err, tagged, untagged)
	_, err = api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{untagged}, DryRun: dry}, noRetry)
	unauthorized(t, err, untagged)
	_, err = api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{tagged}, DryRun: dry}, noRetry)
	if code, _ := apiError(t, err); code != "DryRunOperation" {
		t.Fatalf("dry run on the tagged instance: %s, want DryRunOperation", code)
	}
	// CreateTags is outside the policy's actions.
	_, err = api.CreateTags(context.Background(), &ec2.CreateTagsInput{
		Resources: []string{untagged},
		Tags:      []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
		DryRun:    dry,
	}, noRetry)
	if code, _ := apiError(t, err); code != "DryRunOperation" {
		t.Fatalf("dry-run CreateTags: %s, want DryRunOperation", code)
	}
	for _, in := range srv.Instances() {
		if in.State != ec2fake.Running || len(in.Tags) > 1 {
			t.Errorf("%+v after dry runs, want running and untouched", in)
		}
	}
}

// A dry-run delete, release or cancel asks IAM as the real call would: a
// dependent without the condition's tag value is UnauthorizedOperation,
// one with it DryRunOperation; nothing changes either way.
func TestDryRunOfDependentsUnderTagCondition(t *testing.T) {
	srv, api := newFake(t, ec2fake.WithTagCondition("owner", "blue"))
	ctx, dry := context.Background(), aws.Bool(true)
	blue, other := map[string]string{"owner": "blue"}, map[string]string{"owner": "red"}
	calls := map[string]func(tags map[string]string) error{
		"DeleteVolume": func(tags map[string]string) error {
			_, err := api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(srv.AddVolume(ec2fake.Volume{Tags: tags})), DryRun: dry}, noRetry)
			return err
		},
		"DeleteNetworkInterface": func(tags map[string]string) error {
			_, err := api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(srv.AddNetworkInterface(ec2fake.NetworkInterface{Tags: tags})), DryRun: dry}, noRetry)
			return err
		},
		"ReleaseAddress": func(tags map[string]string) error {
			_, err := api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(srv.AddAddress(ec2fake.Address{Tags: tags})), DryRun: dry}, noRetry)
			return err
		},
		"CancelSpotInstanceRequests": func(tags map[string]string) error {
			sir, _ := srv.RequestSpot(ec2fake.SpotRequest{Type: ec2fake.SpotPersistent, Tags: tags})
			_, err := api.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: []string{sir}, DryRun: dry}, noRetry)
			return err
		},
	}
	for action, call := range calls {
		if code, _ := apiError(t, call(other)); code != "UnauthorizedOperation" {
			t.Errorf("dry-run %s of another owner's: %s, want UnauthorizedOperation", action, code)
		}
		if code, _ := apiError(t, call(blue)); code != "DryRunOperation" {
			t.Errorf("dry-run %s of the condition's owner: %s, want DryRunOperation", action, code)
		}
	}
	if n := len(srv.Volumes()) + len(srv.NetworkInterfaces()) + len(srv.Addresses()); n < 6 {
		t.Errorf("%d volumes, interfaces and addresses left, want all 6: a dry run deletes nothing", n)
	}
	for _, r := range srv.SpotRequests() {
		if r.State == ec2fake.SpotCancelled {
			t.Errorf("spot request %s cancelled by a dry run", r.ID)
		}
	}
}
