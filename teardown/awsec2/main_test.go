package awsec2_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake starts a listening ec2fake, closed when the test ends, and the real
// SDK client for it.
func fake(t testing.TB, opts ...ec2fake.Option) (*ec2fake.Server, *ec2.Client) {
	t.Helper()
	srv := ec2fake.New(opts...)
	t.Cleanup(srv.Close)
	return srv, sdkFor(srv)
}

// fakeInProcess is fake without a listener, for testing/synctest bubbles.
func fakeInProcess(t testing.TB, opts ...ec2fake.Option) (*ec2fake.Server, *ec2.Client) {
	t.Helper()
	srv := ec2fake.NewInProcess(opts...)
	t.Cleanup(srv.Close)
	return srv, sdkFor(srv)
}

func sdkFor(srv *ec2fake.Server) *ec2.Client {
	return ec2.NewFromConfig(mototest.Config(srv.URL(), srv.Client()))
}

func newClient(t testing.TB, api awsec2.API, opts ...awsec2.Option) *awsec2.Client {
	t.Helper()
	c, err := awsec2.New(api, opts...)
	if err != nil {
		t.Fatalf("awsec2.New: %v", err)
	}
	return c
}

// run launches n instances through RunInstances, tagged with tags.

// stateOf describes one instance through the SDK.
func stateOf(t testing.TB, api *ec2.Client, id string) string {
	t.Helper()
	out, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeInstances %s: %v", id, err)
	}
	return string(out.Reservations[0].Instances[0].State.Name)
}

// codeOf returns the EC2 error code err carries, or "" when it carries none.
func codeOf(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// kind names how teardown will treat err.
func kind(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, teardown.ErrGone):
		return "gone"
	case errors.Is(err, teardown.ErrNotFound):
		if teardown.IsPermanent(err) {
			return "permanent not found"
		}
		return "not found" // retryable, not yet confirmed gone
	case teardown.IsPermanent(err):
		return "permanent"
	default:
		return "retryable"
	}
}

// backend is an EC2 endpoint the shared scenarios run against.
type backend struct {
	api  *ec2.Client
	fake *ec2fake.Server // nil on moto
}

var backends = []struct {
	name string
	open func(t *testing.T) backend
}{
	{"moto", func(t *testing.T) backend { return backend{api: ec2.NewFromConfig(mototest.New(t))} }},
	{"ec2fake", func(t *testing.T) backend {
		srv, api := fake(t)
		return backend{api: api, fake: srv}
	}},
}
