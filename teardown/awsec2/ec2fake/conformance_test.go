package ec2fake_test

import (
	"context"
	"encoding/xml"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/leakless/leakless/internal/mototest"
)

// backend is an EC2 endpoint the conformance scenarios run against.
type backend struct {
	api      *ec2.Client
	endpoint string
	http     *http.Client
}

// backends are moto (the reference) and the fake: every behaviour the two
// share is checked on both, so the fake cannot drift from the emulator.
var backends = []struct {
	name string
	open func(t *testing.T) backend
}{
	{"moto", func(t *testing.T) backend {
		cfg := mototest.New(t)
		return backend{ec2.NewFromConfig(cfg), *cfg.BaseEndpoint, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	}},
	{"ec2fake", func(t *testing.T) backend {
		srv, api := newFake(t)
		return backend{api, srv.URL(), srv.Client()}
	}},
}

var scenarios = []struct {
	name string
	run  func(t *testing.T, b backend)
}{
	{"RunInstancesTagsAreDescribed", func(t *testing.T, b backend) {
		ids := mototest.RunInstances(t, b.api, 2, map[string]string{"app": "blue", "team": "x"})
		out, err := b.api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				n++
				tags := map[string]string{}
				for _, tg := range in.Tags {
					tags[*tg.Key] = *tg.Value
				}
				if !maps.Equal(tags, map[string]string{"app": "blue", "team": "x"}) {
					t.Errorf("%s tags %v", *in.InstanceId, tags)
				}
				if in.State.Name != types.InstanceStateNameRunning || in.LaunchTime == nil || in.LaunchTime.IsZero() {
					t.Errorf("%s state %s, launch time %v; want running with a launch time", *in.InstanceId, in.State.Name, in.LaunchTime)
				}
			}
		}
		if n != 2 {
			t.Fatalf("described %d instances, want 2", n)
		}
	}},
	{"TerminateWithUnknownIDsFailsWholeCall", func(t *testing.T, b backend) {
		ids := mototest.RunInstances(t, b.api, 2, nil)
		unknown := []string{"i-0000000000000dead", "i-0000000000000beef"}
		_, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{
			InstanceIds: []string{ids[0], unknown[0], ids[1], unknown[1]},
		}, noRetry)
		code, msg := apiError(t, err)
		if code != "InvalidInstanceID.NotFound" {
			t.Fatalf("code %s, want InvalidInstanceID.NotFound", code)
		}
		want := "The instance IDs '" + unknown[0] + ", " + unknown[1] + "' do not exist"
		if msg != want {
			t.Fatalf("message %q, want %q", msg, want)
		}
		for id, st := range states(t, b.api, ids...) {
			if st != "running" {
				t.Errorf("%s is %s after the failed call, want running: nothing may be terminated", id, st)
			}
		}
	}},
	{"TerminateOneUnknownIDSingularMessage", func(t *testing.T, b backend) {
		_, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0000000000000dead"}}, noRetry)
		code, msg := apiError(t, err)
		if code != "InvalidInstanceID.NotFound" || msg != "The instance ID 'i-0000000000000dead' does not exist" {
			t.Fatalf("got %s: %q", code, msg)
		}
	}},
	{"TerminateNoIDsIsInvalidParameterCombination", func(t *testing.T, b backend) {
		// The SDK refuses to send an empty list; EC2's answer to one is what
		// the client's own check mirrors.
		status, body := rawPost(t, b.http, b.endpoint, url.Values{"Action": {"TerminateInstances"}, "Version": {"2016-11-15"}})
		if status != http.StatusBadRequest || !strings.Contains(body, "<Code>InvalidParameterCombination</Code>") {
			t.Fatalf("status %d, body %s", status, body)
		}
	}},
	{"ErrorEnvelope", func(t *testing.T, b backend) {
		status, body := rawPost(t, b.http, b.endpoint, url.Values{
			"Action": {"TerminateInstances"}, "Version": {"2016-11-15"}, "InstanceId.1": {"i-0000000000000dead"},
		})
		var env struct {
			XMLName xml.Name `xml:"Response"`
			Errors  []struct {
				Code    string `xml:"Code"`
				Message string `xml:"Message"`
			} `xml:"Errors>Error"`
			RequestID string `xml:"RequestID"`
		}
		if err := xml.Unmarshal([]byte(body), &env); err != nil {
			t.Fatalf("status %d, body %s: %v", status, body, err)
		}
		if status != http.StatusBadRequest || len(env.Errors) != 1 || env.Errors[0].Code != "InvalidInstanceID.NotFound" || env.RequestID == "" {
			t.Fatalf("status %d, envelope %+v", status, env)
		}
	}},
	{"ProtectedInstanceIsNotTerminated", func(t *testing.T, b backend) {
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		protect(t, b.api, id, true)
		_, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, noRetry)
		code, msg := apiError(t, err)
		if code != "OperationNotPermitted" || !strings.Contains(msg, "'"+id+"'") {
			t.Fatalf("got %s: %q, want OperationNotPermitted naming %s", code, msg, id)
		}
		if st := states(t, b.api, id)[id]; st != "running" {
			t.Fatalf("protected instance is %s, want running", st)
		}
		protect(t, b.api, id, false)
		if _, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, noRetry); err != nil {
			t.Fatalf("terminate after lifting protection: %v", err)
		}
	}},
	{"TerminateAndStopAnswers", func(t *testing.T, b backend) {
		ids := mototest.RunInstances(t, b.api, 2, nil)
		term, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids[:1]}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		if c := term.TerminatingInstances[0]; *c.InstanceId != ids[0] || c.CurrentState.Name != "shutting-down" || c.PreviousState.Name != "running" {
			t.Fatalf("terminate answer %s: %s → %s, want running → shutting-down", *c.InstanceId, c.PreviousState.Name, c.CurrentState.Name)
		}
		stop, err := b.api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: ids[1:]}, noRetry)
		if err != nil {
			t.Fatal(err)
		}
		if c := stop.StoppingInstances[0]; c.CurrentState.Name != "stopping" || c.PreviousState.Name != "running" {
			t.Fatalf("stop answer: %s → %s, want running → stopping", c.PreviousState.Name, c.CurrentState.Name)
		}
		got := states(t, b.api, ids...)
		if got[ids[0]] != "terminated" || got[ids[1]] != "stopped" {
			t.Fatalf("states %v, want terminated and stopped", got)
		}
		// Terminating a terminated instance succeeds.
		if _, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids[:1]}, noRetry); err != nil {
			t.Fatalf("terminate again: %v", err)
		}
	}},
	{"Filters", func(t *testing.T, b backend) {
		blue := mototest.RunInstances(t, b.api, 2, map[string]string{"app": "blue"})
		green := mototest.RunInstances(t, b.api, 1, map[string]string{"app": "green"})
		other := mototest.RunInstances(t, b.api, 1, map[string]string{"team": "x"})
		if _, err := b.api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: blue[1:]}); err != nil {
			t.Fatal(err)
		}
		f := func(name string, values ...string) types.Filter {
			return types.Filter{Name: aws.String(name), Values: values}
		}
		for _, c := range []struct {
			filters []types.Filter
			want    []string
		}{
			{[]types.Filter{f("tag:app", "blue")}, blue},
			{[]types.Filter{f("tag:app", "blue", "green")}, append(slices.Clone(blue), green...)},
			{[]types.Filter{f("tag:app", "gr*")}, green},
			{[]types.Filter{f("tag-key", "app")}, append(slices.Clone(blue), green...)},
			{[]types.Filter{f("tag-key", "team")}, other},
			{[]types.Filter{f("instance-id", green[0], other[0])}, append(slices.Clone(green), other...)},
			{[]types.Filter{f("tag:app", "blue"), f("instance-state-name", "running")}, blue[:1]},
			{[]types.Filter{f("instance-state-name", "stopped")}, blue[1:]},
			{[]types.Filter{f("tag:app", "red")}, nil},
		} {
			got := slices.Sorted(maps.Keys(describe(t, b.api, &ec2.DescribeInstancesInput{Filters: c.filters})))
			want := slices.Sorted(slices.Values(c.want))
			if !slices.Equal(got, want) {
				name, values := *c.filters[0].Name, c.filters[0].Values
				t.Errorf("filter %s=%v...: got %v, want %v", name, values, got, want)
			}
		}
	}},
	{"DescribeUnknownIDIsNotFound", func(t *testing.T, b backend) {
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		_, err := b.api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id, "i-0000000000000dead"}}, noRetry)
		code, msg := apiError(t, err)
		if code != "InvalidInstanceID.NotFound" || !strings.Contains(msg, "i-0000000000000dead") || strings.Contains(msg, id) {
			t.Fatalf("got %s: %q, want NotFound naming only the unknown id", code, msg)
		}
	}},
	{"DescribeIDsWithMaxResultsIsInvalid", func(t *testing.T, b backend) {
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		_, err := b.api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}, MaxResults: aws.Int32(5)}, noRetry)
		if code, _ := apiError(t, err); code != "InvalidParameterCombination" {
			t.Fatalf("code %s, want InvalidParameterCombination", code)
		}
	}},
	{"PagesYieldEveryInstance", func(t *testing.T, b backend) {
		ids := mototest.RunInstances(t, b.api, 12, map[string]string{"app": "paged"})
		got := describe(t, b.api, &ec2.DescribeInstancesInput{
			Filters:    []types.Filter{{Name: aws.String("tag:app"), Values: []string{"paged"}}},
			MaxResults: aws.Int32(5),
		})
		if len(got) != len(ids) {
			t.Fatalf("paged through %d instances, want %d", len(got), len(ids))
		}
	}},
	{"CreateTags", func(t *testing.T, b backend) {
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		_, err := b.api.CreateTags(context.Background(), &ec2.CreateTagsInput{
			Resources: []string{id},
			Tags:      []types.Tag{{Key: aws.String("owner"), Value: aws.String("me")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := describe(t, b.api, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:owner"), Values: []string{"me"}}}})
		if len(got) != 1 || got[id] == "" {
			t.Fatalf("tag:owner=me matches %v, want only %s", got, id)
		}
	}},
	{"DryRunChangesNothing", func(t *testing.T, b backend) {
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		dry := aws.Bool(true)
		ctx := context.Background()
		for _, c := range []struct {
			action string
			call   func() error
		}{
			{"RunInstances", func() error {
				_, err := b.api.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(mototest.ImageID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), DryRun: dry}, noRetry)
				return err
			}},
			{"DescribeInstances", func() error {
				_, err := b.api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{DryRun: dry}, noRetry)
				return err
			}},
			{"TerminateInstances", func() error {
				_, err := b.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}, DryRun: dry}, noRetry)
				return err
			}},
			{"TerminateInstances of an unknown id", func() error {
				_, err := b.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id, "i-0000000000000dead"}, DryRun: dry}, noRetry)
				return err
			}},
			{"StopInstances", func() error {
				_, err := b.api.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}, DryRun: dry}, noRetry)
				return err
			}},
			{"ModifyInstanceAttribute", func() error {
				_, err := b.api.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{
					InstanceId:            aws.String(id),
					DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)},
					DryRun:                dry,
				}, noRetry)
				return err
			}},
			{"CreateTags", func() error {
				_, err := b.api.CreateTags(ctx, &ec2.CreateTagsInput{
					Resources: []string{id},
					Tags:      []types.Tag{{Key: aws.String("dry"), Value: aws.String("run")}},
					DryRun:    dry,
				}, noRetry)
				return err
			}},
		} {
			err := c.call()
			var re *smithyhttp.ResponseError
			code, msg := apiError(t, err)
			if code != "DryRunOperation" || msg != "Request would have succeeded, but DryRun flag is set." || !errors.As(err, &re) || re.HTTPStatusCode() != 412 {
				t.Errorf("%s with DryRun: %v, want DryRunOperation with HTTP 412", c.action, err)
			}
		}
		all := describe(t, b.api, &ec2.DescribeInstancesInput{})
		if len(all) != 1 || all[id] != "running" {
			t.Fatalf("instances %v after dry runs, want only %s, running", all, id)
		}
		// Not protected: a real terminate goes through.
		if _, err := b.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, noRetry); err != nil {
			t.Fatalf("terminate after the dry runs: %v", err)
		}
		got := describe(t, b.api, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:dry"), Values: []string{"run"}}}})
		if len(got) != 0 {
			t.Fatalf("a dry-run CreateTags tagged %v", got)
		}
	}},
}

func protect(t *testing.T, c *ec2.Client, id string, on bool) {
	t.Helper()
	_, err := c.ModifyInstanceAttribute(context.Background(), &ec2.ModifyInstanceAttributeInput{
		InstanceId:            aws.String(id),
		DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(on)},
	})
	if err != nil {
		t.Fatalf("ModifyInstanceAttribute: %v", err)
	}
}

func TestConformance(t *testing.T) {
	for _, sc := range scenarios {
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
