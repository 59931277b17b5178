package sweeper

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// The owner tag that marks this deployment's instances, and another
// deployment's value for the same key.
const (
	ownerKey   = "leakless:owner"
	ownerValue = "prod"
	otherValue = "staging"
)

// cloud is an EC2 (ec2fake or moto) reached through the real SDK client,
// with this deployment's awsec2 client over it.
type cloud struct {
	api  *ec2.Client
	ec2  *awsec2.Client
	fake *ec2fake.Server // nil on moto
}

// newFakeCloud starts an ec2fake server for the test.
func newFakeCloud(t testing.TB, opts ...ec2fake.Option) *cloud {
	t.Helper()
	fake := ec2fake.New(opts...)
	t.Cleanup(fake.Close)
	c := newCloud(t, ec2.NewFromConfig(mototest.Config(fake.URL(), fake.Client())))
	c.fake = fake
	return c
}

// newInProcessCloud is newFakeCloud without a listener, for tests in a
// testing/synctest bubble.
func newInProcessCloud(t testing.TB, opts ...ec2fake.Option) *cloud {
	t.Helper()
	fake := ec2fake.NewInProcess(opts...)
	t.Cleanup(fake.Close)
	c := newCloud(t, ec2.NewFromConfig(mototest.Config(fake.URL(), fake.Client())))
	c.fake = fake
	return c
}

// newMotoCloud gives the test an isolated EC2 on moto.
func newMotoCloud(t testing.TB) *cloud {
	t.Helper()
	return newCloud(t, ec2.NewFromConfig(mototest.New(t)))
}

func newCloud(t testing.TB, api *ec2.Client, opts ...awsec2.Option) *cloud {
	t.Helper()
	c, err := awsec2.New(api, append([]awsec2.Option{awsec2.WithOwner(map[string]string{ownerKey: ownerValue})}, opts...)...)
	if err != nil {
		t.Fatalf("awsec2.New: %v", err)
	}
	return &cloud{api: api, ec2: c}
}

// launch starts n instances tagged with owner as the owner tag's value and,
// unless resourceID is empty, resourceID as the resource-id tag. On ec2fake
// they are launched age ago; on moto, now.
func (c *cloud) launch(t testing.TB, n int, owner, resourceID string, age time.Duration) []string {
	t.Helper()
	tags := map[string]string{ownerKey: owner}
	if resourceID != "" {
		tags[DefaultResourceTag] = resourceID
	}
	ids := make([]string, 0, n)
	if c.fake != nil {
		for range n {
			ids = append(ids, c.fake.Launch(ec2fake.Instance{Tags: tags, LaunchTime: time.Now().Add(-age)}))
		}
		return ids
	}
	var specs []types.Tag
	for k, v := range tags {
		specs = append(specs, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := c.api.RunInstances(t.Context(), &ec2.RunInstancesInput{
		ImageId:           aws.String("ami-12c6146b"),
		InstanceType:      types.InstanceTypeT3Micro,
		MinCount:          aws.Int32(int32(n)),
		MaxCount:          aws.Int32(int32(n)),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: specs}},
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	return ids
}

// states returns every instance's state by id.
func (c *cloud) states(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	p := ec2.NewDescribeInstancesPaginator(c.api, &ec2.DescribeInstancesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("DescribeInstances: %v", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				if in.State != nil {
					out[aws.ToString(in.InstanceId)] = string(in.State.Name)
				}
			}
		}
	}
	return out
}

// terminated returns the sorted ids of the instances that were terminated
// (or are shutting down).
func (c *cloud) terminated(t testing.TB) []string {
	t.Helper()
	var out []string
	for id, s := range c.states(t) {
		if s == "terminated" || s == "shutting-down" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// terminateCalls returns how many TerminateInstances calls ec2fake received.
func (c *cloud) terminateCalls() int { return c.fake.Calls("TerminateInstances") }

// sorted returns the ids of several lists as one sorted list.
func sorted(lists ...[]string) []string {
	out := slices.Concat(lists...)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}
