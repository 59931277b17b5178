package awsec2_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/smithy-go"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestTransientFaultsAreRetriedToSuccess(t *testing.T) {
	for _, f := range []ec2fake.Fault{
		{Code: "RequestLimitExceeded"},
		{Code: "Throttling"},
		{Code: "ThrottlingException"},
		{Code: "RequestThrottled"},
		{Code: "InternalError"},
		{Code: "InternalFailure"},
		{Code: "ServiceUnavailable"},
		{Code: "Unavailable"},
		{Code: "IncorrectInstanceState"}, // EC2 still changing the instance's state
		{Status: http.StatusBadGateway},  // a 5xx without EC2's envelope
		{Status: http.StatusServiceUnavailable},
	} {
		t.Run(f.Code+http.StatusText(f.Status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, api := fakeInProcess(t)
				id := srv.Launch(ec2fake.Instance{})
				srv.FailWith("TerminateInstances", f, 2)
				c := newClient(t, api)
				var seen []string
				err := teardown.StopWithRetry(context.Background(), c, id,
					teardown.WithMaxAttempts(3),
					teardown.WithOnRetry(func(ri teardown.RetryInfo) {
						var ae smithy.APIError
						if errors.As(ri.Err, &ae) {
							seen = append(seen, ae.ErrorCode())
						}
					}))
				if err != nil {
					t.Fatalf("StopWithRetry: %v", err)
				}
				if n := srv.Calls("TerminateInstances"); n != 3 {
					t.Fatalf("%d TerminateInstances calls, want 3: two faults, one success", n)
				}
				if len(seen) != 2 {
					t.Fatalf("OnRetry saw API errors %v, want two", seen)
				}
				for _, r := range srv.Requests() {
					if r.SDKRequest != "attempt=1; max=1" {
						t.Fatalf("%s sent with Amz-Sdk-Request %q, want one SDK attempt per call", r.Action, r.SDKRequest)
					}
				}
				if in, _ := srv.Instance(id); in.State != ec2fake.Terminated {
					t.Fatalf("%s is %s", id, in.State)
				}
			})
		})
	}
}

func TestExhaustedRetriesKeepTheAPIError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t)
		id := srv.Launch(ec2fake.Instance{})
		srv.Fail("TerminateInstances", "ServiceUnavailable", 10)
		err := teardown.StopWithRetry(context.Background(), newClient(t, api), id, teardown.WithMaxAttempts(3))
		var re *teardown.RetryError
		if !errors.As(err, &re) || re.Attempts != 3 || !errors.Is(err, teardown.ErrExhausted) || codeOf(err) != "ServiceUnavailable" {
			t.Fatalf("got %v, want exhausted after 3 calls with the ServiceUnavailable API error", err)
		}
		if n := srv.Calls("TerminateInstances"); n != 3 {
			t.Fatalf("%d calls, want 3: no SDK retries inside ours", n)
		}
	})
}

func TestPermanentIsNotRetried(t *testing.T) {
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{Protected: true})
	err := teardown.StopWithRetry(context.Background(), newClient(t, api), id, teardown.WithMaxAttempts(5))
	if !errors.Is(err, teardown.ErrPermanent) || codeOf(err) != "OperationNotPermitted" {
		t.Fatalf("got %v, want permanent OperationNotPermitted", err)
	}
	if n := srv.Calls("TerminateInstances"); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestThrottleDrainsTheBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t)
		ids := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
		c := newClient(t, api, awsec2.WithRateLimit(1, 10))
		srv.Fail("TerminateInstances", "RequestLimitExceeded", 1)
		if err := c.Stop(context.Background(), ids[0]); codeOf(err) != "RequestLimitExceeded" {
			t.Fatalf("first Stop: %v", err)
		}
		// Nine tokens were left; the throttle spent them, so the next call
		// waits a full token's time (1s at 1/s).
		start := time.Now()
		if err := c.Stop(context.Background(), ids[1]); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second {
			t.Fatalf("next call went out after %v, want at least 1s: the bucket was not drained", d)
		}
	})
}

func TestNoThrottleNoWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t)
		ids := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
		c := newClient(t, api, awsec2.WithRateLimit(1, 10))
		srv.Fail("TerminateInstances", "InternalError", 1)
		_ = c.Stop(context.Background(), ids[0])
		start := time.Now()
		if err := c.Stop(context.Background(), ids[1]); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("next call waited %v after a non-throttling error, want 0", d)
		}
	})
}

func TestAttemptTimeoutCutsOffLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t)
		id := srv.Launch(ec2fake.Instance{})
		srv.SetLatency("TerminateInstances", time.Minute)
		start := time.Now()
		err := teardown.StopWithRetry(context.Background(), newClient(t, api), id,
			teardown.WithAttemptTimeout(2*time.Second),
			teardown.WithBackoff(time.Second, time.Second),
			teardown.WithJitter(teardown.NoJitter),
			teardown.WithOnRetry(func(teardown.RetryInfo) { srv.SetLatency("TerminateInstances", 0) }))
		if err != nil {
			t.Fatalf("StopWithRetry: %v", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("took %v, want 3s: a 2s attempt cut off, 1s backoff, an instant answer", d)
		}
		reqs := srv.Requests()
		if len(reqs) != 2 || reqs[0].Status != 0 || reqs[1].Status != http.StatusOK {
			t.Fatalf("requests %+v, want an abandoned call then a successful one", reqs)
		}
		if in, _ := srv.Instance(id); in.State != ec2fake.Terminated {
			t.Fatalf("%s is %s", id, in.State)
		}
	})
}

func TestLimiterWaitPastDeadlineFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t)
		ids := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
		c := newClient(t, api, awsec2.WithRateLimit(0.1, 1)) // one call per 10s
		if err := c.Stop(context.Background(), ids[0]); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := c.Stop(ctx, ids[1])
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 0 {
			t.Fatalf("got %v after %v, want DeadlineExceeded at once", err, time.Since(start))
		}
		if n := srv.Calls("TerminateInstances"); n != 1 {
			t.Fatalf("%d calls, want 1", n)
		}
	})
}
