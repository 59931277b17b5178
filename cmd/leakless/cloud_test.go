package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// cloud is the EC2 a world runs on: the embedded fake, which launches an
// instance at any age and counts calls, or moto, which launches it now.
type cloud interface {
	url() string
	// launch starts an instance with tags, launched age ago where the
	// cloud can say so.
	launch(t *testing.T, tags map[string]string, age time.Duration) string
	protect(t *testing.T, id string)
	terminate(t *testing.T, id string)
	// states is every instance the cloud holds, by id.
	states(t *testing.T) map[string]string
	// writes counts the calls that change anything; false when the cloud
	// cannot count them.
	writes() (int, bool)
	// guards are the audit's and plan's age flags, and settle the wait
	// that makes instances launched before it old by them.
	guards() []string
	settle()
	// sdk is an EC2 client of the cloud, for what both clouds do alike.
	sdk() *ec2.Client
}

type fakeCloud struct{ fake *ec2fake.Server }

func newFakeCloud(t *testing.T) cloud {
	fake := ec2fake.New()
	t.Cleanup(fake.Close)
	return fakeCloud{fake}
}

func (c fakeCloud) url() string { return c.fake.URL() }

func (c fakeCloud) launch(t *testing.T, tags map[string]string, age time.Duration) string {
	return c.fake.Launch(ec2fake.Instance{Tags: tags, LaunchTime: time.Now().Add(-age)})
}

func (c fakeCloud) protect(t *testing.T, id string) { c.fake.Protect(id) }

func (c fakeCloud) terminate(t *testing.T, id string) {
	if _, err := c.client().TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
}

func (c fakeCloud) sdk() *ec2.Client { return c.client() }

func (c fakeCloud) client() *ec2.Client {
	return ec2.NewFromConfig(mototest.Config(c.fake.URL(), c.fake.Client()))
}

func (c fakeCloud) states(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, in := range c.fake.Instances() {
		out[in.ID] = string(in.State)
	}
	return out
}

func (c fakeCloud) writes() (int, bool) {
	n := 0
	for _, action := range []string{"TerminateInstances", "StopInstances", "CreateTags", "ModifyInstanceAttribute"} {
		n += c.fake.Calls(action)
	}
	return n, true
}

// The fake launches at any age, so the defaults are the guards.
func (fakeCloud) guards() []string { return nil }
func (fakeCloud) settle()          {}

// motoAge is how old moto's instances must be to count as old: moto
// stamps a launch with the time of the call, to the second.
const motoAge = 3 * time.Second

type motoCloud struct {
	endpoint string
	ec2      *ec2.Client
}

// newMotoCloud talks to moto's default account, the one the command's
// static credentials reach; the world's owner tag keeps it apart.
func newMotoCloud(t *testing.T) cloud {
	u := mototest.URL(t)
	return motoCloud{endpoint: u, ec2: ec2.NewFromConfig(mototest.Config(u, nil))}
}

func (c motoCloud) url() string { return c.endpoint }

func (c motoCloud) launch(t *testing.T, tags map[string]string, _ time.Duration) string {
	spec := types.TagSpecification{ResourceType: types.ResourceTypeInstance}
	for k, v := range tags {
		spec.Tags = append(spec.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	out, err := c.ec2.RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId: aws.String(mototest.ImageID), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), TagSpecifications: []types.TagSpecification{spec},
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

func (c motoCloud) protect(t *testing.T, id string) {
	_, err := c.ec2.ModifyInstanceAttribute(context.Background(), &ec2.ModifyInstanceAttributeInput{
		InstanceId: aws.String(id), DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)}})
	if err != nil {
		t.Fatal(err)
	}
}

func (c motoCloud) terminate(t *testing.T, id string) {
	if _, err := c.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
}

func (c motoCloud) states(t *testing.T) map[string]string {
	out := map[string]string{}
	pages := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				out[aws.ToString(in.InstanceId)] = string(in.State.Name)
			}
		}
	}
	return out
}

func (motoCloud) writes() (int, bool) { return 0, false }

func (c motoCloud) sdk() *ec2.Client { return c.ec2 }

func (motoCloud) guards() []string {
	return []string{"-min-age", motoAge.String(), "-provision-timeout", motoAge.String()}
}

func (motoCloud) settle() { time.Sleep(motoAge + 1500*time.Millisecond) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
