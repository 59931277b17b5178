package ec2fake_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newFake starts a listening fake, closed when the test ends, and an SDK
// client for it.
func newFake(t *testing.T, opts ...ec2fake.Option) (*ec2fake.Server, *ec2.Client) {
	t.Helper()
	srv := ec2fake.New(opts...)
	t.Cleanup(srv.Close)
	return srv, ec2.NewFromConfig(mototest.Config(srv.URL(), srv.Client()))
}

// inProcess is newFake without a listener, for testing/synctest bubbles.
func inProcess(t *testing.T, opts ...ec2fake.Option) (*ec2fake.Server, *ec2.Client) {
	t.Helper()
	srv := ec2fake.NewInProcess(opts...)
	t.Cleanup(srv.Close)
	return srv, ec2.NewFromConfig(mototest.Config(srv.URL(), srv.Client()))
}

var noRetry = func(o *ec2.Options) { o.Retryer = aws.NopRetryer{} }

// describe returns id → state for every instance the filters match.
func describe(t *testing.T, c *ec2.Client, in *ec2.DescribeInstancesInput) map[string]string {
	t.Helper()
	out := map[string]string{}
	p := ec2.NewDescribeInstancesPaginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("DescribeInstances: %v", err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				out[*inst.InstanceId] = string(inst.State.Name)
			}
		}
	}
	return out
}

func states(t *testing.T, c *ec2.Client, ids ...string) map[string]string {
	t.Helper()
	return describe(t, c, &ec2.DescribeInstancesInput{InstanceIds: ids})
}

// apiError returns err's EC2 code and message, failing the test when err
// carries none.
func apiError(t *testing.T, err error) (code, msg string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v carries no smithy.APIError", err)
	}
	return ae.ErrorCode(), ae.ErrorMessage()
}

// rawPost sends form to endpoint without the SDK, for what the SDK would
// refuse to send.
func rawPost(t *testing.T, client *http.Client, endpoint string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDLEAKLESSTEST/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
