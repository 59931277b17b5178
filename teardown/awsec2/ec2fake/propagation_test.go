package ec2fake_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestPropagationDelayHidesNewInstances(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	srv, api := newFake(t, ec2fake.WithPropagationDelay(5*time.Second), ec2fake.WithClock(clk.Now))
	old := srv.Launch(ec2fake.Instance{})
	id := mototest.RunInstances(t, api, 1, map[string]string{"app": "new"})[0]
	wantNotFound := func(what string, err error) {
		t.Helper()
		code, msg := apiError(t, err)
		if code != "InvalidInstanceID.NotFound" || msg != "The instance ID '"+id+"' does not exist" {
			t.Errorf("%s: got %s: %q, want NotFound naming only %s", what, code, msg, id)
		}
	}
	calls := func() {
		t.Helper()
		_, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, noRetry)
		wantNotFound("DescribeInstances by id", err)
		_, err = api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{old, id}}, noRetry)
		wantNotFound("TerminateInstances", err)
		_, err = api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{id, old}}, noRetry)
		wantNotFound("StopInstances", err)
		_, err = api.ModifyInstanceAttribute(context.Background(), &ec2.ModifyInstanceAttributeInput{
			InstanceId:            aws.String(id),
			DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)},
		}, noRetry)
		wantNotFound("ModifyInstanceAttribute", err)
		_, err = api.CreateTags(context.Background(), &ec2.CreateTagsInput{
			Resources: []string{id},
			Tags:      []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
		}, noRetry)
		wantNotFound("CreateTags", err)
		for _, c := range []struct {
			in   *ec2.DescribeInstancesInput
			want int
		}{
			{&ec2.DescribeInstancesInput{}, 1},
			{&ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("instance-id"), Values: []string{id, old}}}}, 1},
			{&ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:app"), Values: []string{"new"}}}}, 0},
		} {
			if got := describe(t, api, c.in); got[id] != "" || len(got) != c.want {
				t.Errorf("DescribeInstances %v lists %v, want %d instances, not %s", c.in.Filters, got, c.want, id)
			}
		}
	}

	calls()
	clk.Advance(5*time.Second - time.Nanosecond)
	calls()
	if in, ok := srv.Instance(id); !ok || in.State != ec2fake.Running || in.Protected || in.Tags["k"] != "" {
		t.Fatalf("%s is %+v, want running and untouched: every call failed", id, in)
	}
	if in, _ := srv.Instance(old); in.State != ec2fake.Running {
		t.Fatalf("%s is %s, want running: the calls naming it failed whole", old, in.State)
	}

	clk.Advance(time.Nanosecond)
	if got := states(t, api, id); got[id] != "running" {
		t.Fatalf("after the delay DescribeInstances says %v, want %s running", got, id)
	}
	if _, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{old, id}}, noRetry); err != nil {
		t.Fatalf("TerminateInstances after the delay: %v", err)
	}
	if in, _ := srv.Instance(id); in.State != ec2fake.Terminated {
		t.Fatalf("%s is %s, want terminated", id, in.State)
	}
}

func TestLaunchedInstancesAreVisibleAtOnce(t *testing.T) {
	srv, api := newFake(t, ec2fake.WithPropagationDelay(time.Hour))
	id := srv.Launch(ec2fake.Instance{})
	if got := states(t, api, id); got[id] != "running" {
		t.Fatalf("DescribeInstances says %v, want %s running: Launch adds visible instances", got, id)
	}
}
