package mototest_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"go.uber.org/goleak"

	"github.com/leakless/leakless/internal/mototest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runOne(t *testing.T, c *ec2.Client) string {
	t.Helper()
	out, err := c.RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId:  aws.String("ami-12c6146b"),
		MinCount: aws.Int32(1),
		MaxCount: aws.Int32(1),
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	return *out.Instances[0].InstanceId
}

func countInstances(t *testing.T, c *ec2.Client) int {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatalf("DescribeInstances: %v", err)
	}
	n := 0
	for _, r := range out.Reservations {
		n += len(r.Instances)
	}
	return n
}

func TestNewAnswersEC2(t *testing.T) {
	cfg := mototest.New(t)
	if cfg.Region != mototest.Region {
		t.Fatalf("region %q, want %q", cfg.Region, mototest.Region)
	}
	if cfg.BaseEndpoint == nil || *cfg.BaseEndpoint != mototest.URL(t) {
		t.Fatalf("BaseEndpoint %v, want %s", cfg.BaseEndpoint, mototest.URL(t))
	}
	c := ec2.NewFromConfig(cfg)
	id := runOne(t, c)
	if got := countInstances(t, c); got != 1 {
		t.Fatalf("after launching %s: %d instances described, want 1", id, got)
	}
}

func TestEachCallIsIsolated(t *testing.T) {
	a := ec2.NewFromConfig(mototest.New(t))
	b := ec2.NewFromConfig(mototest.New(t))
	runOne(t, a)
	runOne(t, a)
	if got := countInstances(t, a); got != 2 {
		t.Fatalf("first config sees %d instances, want 2", got)
	}
	if got := countInstances(t, b); got != 0 {
		t.Fatalf("second config sees %d instances of the first, want 0", got)
	}
}

func TestParallelTestsDoNotShareState(t *testing.T) {
	for _, name := range []string{"a", "b", "c"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := ec2.NewFromConfig(mototest.New(t))
			runOne(t, c)
			if got := countInstances(t, c); got != 1 {
				t.Fatalf("%d instances described, want only this test's 1", got)
			}
		})
	}
}
