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
