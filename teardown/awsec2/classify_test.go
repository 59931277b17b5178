package awsec2

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// TestClassification sends each EC2 error code over the wire, from ec2fake
// through the real SDK client, and checks what Stop makes of it.
func TestClassification(t *testing.T) {
	rows := []struct {
		code string
		want string // ok, gone, permanent, retryable
		// drained: the client's buckets are emptied by the answer.
		drained bool
	}{
		{"InvalidInstanceID.NotFound", "retryable", false}, // the fake still describes the instance: not gone
		{"IncorrectInstanceState", "retryable", false},
		{"OperationNotPermitted", "permanent", false},
		{"InvalidInstanceID.Malformed", "permanent", false},
		{"UnauthorizedOperation", "permanent", false},
		{"AuthFailure", "permanent", false},
		{"InvalidParameterValue", "permanent", false},
		{"InvalidParameterCombination", "permanent", false},
		{"InvalidParameter", "permanent", false},
		{"RequestLimitExceeded", "retryable", true},
		{"Throttling", "retryable", true},
		{"ThrottlingException", "retryable", true},
		{"ThrottledException", "retryable", true},
		{"RequestThrottled", "retryable", true},
		{"RequestThrottledException", "retryable", true},
		{"TooManyRequestsException", "retryable", true},
		{"ProvisionedThroughputExceededException", "retryable", true},
		{"TransactionInProgressException", "retryable", true},
		{"BandwidthLimitExceeded", "retryable", true},
		{"LimitExceededException", "retryable", true},
		{"SlowDown", "retryable", true},
		{"PriorRequestNotComplete", "retryable", true},
		{"EC2ThrottledException", "retryable", true},
		{"InternalError", "retryable", false},
		{"InternalFailure", "retryable", false},
		{"ServiceUnavailable", "retryable", false},
		{"Unavailable", "retryable", false},
		{"SomeCodeNobodyKnows", "retryable", false},
	}

	tested := map[string]bool{}
	for _, r := range rows {
		tested[r.code] = true
	}
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		if !tested[code] {
			t.Errorf("classification table code %s has no row here", code)
		}
	}

	for _, r := range rows {
		t.Run(r.code, func(t *testing.T) {
			srv := ec2fake.New()
			defer srv.Close()
			id := srv.Launch(ec2fake.Instance{})
			srv.Fail("TerminateInstances", r.code, 1)
			c, err := New(ec2.NewFromConfig(mototest.Config(srv.URL(), srv.Client())))
			if err != nil {
				t.Fatal(err)
			}

			err = c.Stop(context.Background(), id)
			got := "retryable"
			switch {
			case err == nil:
				got = "ok"
			case errors.Is(err, teardown.ErrGone):
				got = "gone"
			case teardown.IsPermanent(err):
				got = "permanent"
			}
			if got != r.want {
				t.Fatalf("Stop: %v: classified %s, want %s", err, got, r.want)
			}
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != r.code {
				t.Fatalf("Stop: %v: the smithy.APIError with code %s is lost", err, r.code)
			}
			// Full buckets hold 100 and 1,000 tokens and a call takes 1 of
			// each; a drained bucket refills at only 5/s and 20/s.
			calls, resources := c.calls.Tokens(), c.resources.Tokens()
			if drained := calls < 50 && resources < 500; drained != r.drained {
				t.Fatalf("buckets drained = %v (%.1f and %.1f tokens left), want %v", drained, calls, resources, r.drained)
			}
		})
	}
}
