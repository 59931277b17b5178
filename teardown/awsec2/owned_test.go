package awsec2_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestListingRefusesWithoutOwner(t *testing.T) {
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{})
	c := newClient(t, api)
	for name, list := range map[string]func() ([]teardown.Instance, error){
		"Owned":    func() ([]teardown.Instance, error) { return c.Owned(context.Background()) },
		"Describe": func() ([]teardown.Instance, error) { return c.Describe(context.Background(), []string{id}) },
	} {
		if got, err := list(); !errors.Is(err, awsec2.ErrNoOwner) || got != nil {
			t.Errorf("%s without owner tags: %v, %v; want ErrNoOwner and nothing", name, got, err)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("%d calls made, want 0", n)
	}
}

func TestOwnedPagesAndFilters(t *testing.T) {
	srv, api := fake(t)
	owner := map[string]string{"app": "sweeper", "env": "prod"}
	launched := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := map[string]string{}
	for i := range 2300 {
		state := []string{ec2fake.Running, ec2fake.Pending, ec2fake.Stopping, ec2fake.Stopped}[i%4]
		want[srv.Launch(ec2fake.Instance{Tags: owner, State: state, LaunchTime: launched})] = state
	}
	for _, in := range []ec2fake.Instance{
		{Tags: map[string]string{"app": "sweeper", "env": "staging"}}, // another deployment
		{Tags: map[string]string{"app": "sweeper"}},                   // one tag of two
		{Tags: owner, State: ec2fake.Terminated},
		{Tags: owner, State: ec2fake.ShuttingDown},
		{},
	} {
		srv.Launch(in)
	}

	got, err := newClient(t, api, awsec2.WithOwner(owner)).Owned(context.Background())
	if err != nil {
		t.Fatalf("Owned: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Owned returned %d instances, want %d", len(got), len(want))
	}
	for _, in := range got {
		if want[in.ID] != in.State || !in.LaunchedAt.Equal(launched) || in.Tags["env"] != "prod" {
			t.Fatalf("instance %+v, want state %q launched %v", in, want[in.ID], launched)
		}
	}
	if n := srv.Calls("DescribeInstances"); n != 3 {
		t.Fatalf("%d DescribeInstances calls, want 3 pages of up to 1,000", n)
	}
}

// unfiltered drops every filter before calling the real client, as a
// careless EC2-compatible endpoint might ignore them.
type unfiltered struct{ *ec2.Client }

func (u unfiltered) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	c := *in
	c.Filters = nil
	return u.Client.DescribeInstances(ctx, &c, optFns...)
}

func TestOwnedChecksTagsItself(t *testing.T) {
	srv, api := fake(t)
	ours := srv.Launch(ec2fake.Instance{Tags: map[string]string{"app": "blue"}})
	srv.Launch(ec2fake.Instance{Tags: map[string]string{"app": "green"}})
	srv.Launch(ec2fake.Instance{Tags: map[string]string{"app": "blue"}, State: ec2fake.Terminated})
	got, err := newClient(t, unfiltered{api}, awsec2.WithOwner(map[string]string{"app": "blue"})).Owned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != ours {
		t.Fatalf("Owned over an endpoint that ignores filters returned %+v, want only %s", got, ours)
	}
}

func TestOwnedErrorKeepsAPIError(t *testing.T) {
	srv, api := fake(t)
	srv.Fail("DescribeInstances", "RequestLimitExceeded", 1)
	_, err := newClient(t, api, awsec2.WithOwner(map[string]string{"app": "blue"})).Owned(context.Background())
	if codeOf(err) != "RequestLimitExceeded" {
		t.Fatalf("Owned: %v, want the RequestLimitExceeded API error", err)
	}
}

// repeatingToken answers every page with the same NextToken.
type repeatingToken struct{ *ec2.Client }

func (r repeatingToken) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	out, err := r.Client.DescribeInstances(ctx, in, optFns...)
	if out != nil {
		out.NextToken = aws.String("again")
	}
	return out, err
}

func TestOwnedStopsOnRepeatedPageToken(t *testing.T) {
	srv, api := fake(t)
	srv.Launch(ec2fake.Instance{Tags: map[string]string{"app": "blue"}})
	_, err := newClient(t, repeatingToken{api}, awsec2.WithOwner(map[string]string{"app": "blue"})).Owned(context.Background())
	if err == nil {
		t.Fatal("Owned followed a repeating page token without error")
	}
	if n := srv.Calls("DescribeInstances"); n != 2 {
		t.Fatalf("%d DescribeInstances calls, want 2", n)
	}
}

// A Stop-mode client takes an instance no further than stopped: Owned lists
// only what it could still act on, or a sweeper would stop the same
// stopped instances again on every pass.
func TestOwnedInStopModeListsOnlyPendingAndRunning(t *testing.T) {
	srv, api := fake(t)
	owner := map[string]string{"app": "sweeper"}
	byState := map[string]string{}
	for _, state := range []string{ec2fake.Pending, ec2fake.Running, ec2fake.Stopping, ec2fake.Stopped} {
		byState[srv.Launch(ec2fake.Instance{Tags: owner, State: state})] = state
	}
	for _, tc := range []struct {
		mode awsec2.Mode
		want []string
	}{
		{awsec2.Terminate, []string{ec2fake.Pending, ec2fake.Running, ec2fake.Stopping, ec2fake.Stopped}},
		{awsec2.Stop, []string{ec2fake.Pending, ec2fake.Running}},
	} {
		got, err := newClient(t, api, awsec2.WithOwner(owner), awsec2.WithMode(tc.mode)).Owned(context.Background())
		if err != nil {
			t.Fatalf("%v: Owned: %v", tc.mode, err)
		}
		var states []string
		for _, in := range got {
			states = append(states, byState[in.ID])
		}
		if len(states) != len(tc.want) {
			t.Errorf("%v mode: Owned lists states %v; want %v", tc.mode, states, tc.want)
			continue
		}
		for _, s := range tc.want {
			if !slices.Contains(states, s) {
				t.Errorf("%v mode: Owned lists states %v; want %v", tc.mode, states, tc.want)
			}
		}
	}
}
