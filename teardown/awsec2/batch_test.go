package awsec2_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/smithy-go"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func terminateRequests(srv *ec2fake.Server) []ec2fake.Request {
	var out []ec2fake.Request
	for _, r := range srv.Requests() {
		if r.Action == "TerminateInstances" {
			out = append(out, r)
		}
	}
	return out
}

func TestBadIDsArePermanentWithoutACall(t *testing.T) {
	srv, api := fake(t)
	c := newClient(t, api)
	bad := []string{"", "bogus", "i-123", "i-0123456789ABCDEF0", "i-0123456789abcdef", "x-0123456789abcdef0", " i-0123456789abcdef0"}
	res := c.StopBatch(context.Background(), bad)
	for _, id := range bad {
		if !teardown.IsPermanent(res[id]) || !errors.Is(res[id], awsec2.ErrInvalidID) {
			t.Errorf("%q: %v, want permanent ErrInvalidID", id, res[id])
		}
	}
	if err := c.Stop(context.Background(), ""); !teardown.IsPermanent(err) {
		t.Errorf("Stop(\"\"): %v, want permanent", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("%d calls made for bad ids, want 0", n)
	}
}

func TestDuplicateIDsAreSentOnce(t *testing.T) {
	srv, api := fake(t)
	a, b := srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})
	res := newClient(t, api).StopBatch(context.Background(), []string{a, b, a, a})
	if len(res) != 2 || res[a] != nil || res[b] != nil {
		t.Fatalf("results %v, want nil for each of 2 ids", res)
	}
	reqs := terminateRequests(srv)
	if len(reqs) != 1 || !slices.Equal(reqs[0].InstanceIDs, []string{a, b}) {
		t.Fatalf("requests %+v, want one naming %s and %s once each", reqs, a, b)
	}
}

func TestBatchesAreCutToBatchSize(t *testing.T) {
	srv, api := fake(t)
	ids := make([]string, 1200)
	for i := range ids {
		ids[i] = srv.Launch(ec2fake.Instance{})
	}
	c := newClient(t, api, awsec2.WithResourceRateLimit(math.Inf(1), 1))
	for id, err := range c.StopBatch(context.Background(), ids) {
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	var sizes []int
	for _, r := range terminateRequests(srv) {
		sizes = append(sizes, len(r.InstanceIDs))
	}
	if !slices.Equal(sizes, []int{500, 500, 200}) {
		t.Fatalf("batch sizes %v, want [500 500 200]", sizes)
	}
}

func TestNotFoundResendsTheRest(t *testing.T) {
	srv, api := fake(t)
	live := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
	dead := srv.Launch(ec2fake.Instance{State: ec2fake.Terminated})
	srv.Launch(ec2fake.Instance{}) // someone else's, untouched
	unknown := "i-0000000000000dead"

	res := newClient(t, api).StopBatch(context.Background(), []string{live[0], unknown, live[1], dead})
	if res[live[0]] != nil || res[live[1]] != nil || res[dead] != nil || kind(res[unknown]) != "not found" {
		t.Fatalf("results %v", res)
	}
	reqs := terminateRequests(srv)
	if len(reqs) != 2 || !slices.Equal(reqs[1].InstanceIDs, []string{live[0], live[1], dead}) {
		t.Fatalf("requests %+v, want the batch, then the batch without %s", reqs, unknown)
	}
	if n := srv.Calls("DescribeInstances"); n != 1 {
		t.Fatalf("%d DescribeInstances calls, want 1 to confirm %s", n, unknown)
	}
}

func TestNotFoundOfVisibleInstanceIsRetryable(t *testing.T) {
	// Right after launch EC2 may not know an instance it just created.
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{})
	srv.Fail("TerminateInstances", "InvalidInstanceID.NotFound", 1)
	c := newClient(t, api)

	err := c.Stop(context.Background(), id)
	if kind(err) != "retryable" || codeOf(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("Stop: %v, want retryable NotFound: DescribeInstances still sees %s", err, id)
	}
	if err := teardown.StopWithRetry(context.Background(), c, id, teardown.WithBackoff(0, 0)); err != nil {
		t.Fatalf("StopWithRetry: %v", err)
	}
	if in, _ := srv.Instance(id); in.State != ec2fake.Terminated {
		t.Fatalf("%s is %s", id, in.State)
	}
}

func TestNotFoundConfirmedShuttingDownIsGone(t *testing.T) {
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{State: ec2fake.ShuttingDown})
	srv.Fail("TerminateInstances", "InvalidInstanceID.NotFound", 1)
	if err := newClient(t, api).Stop(context.Background(), id); kind(err) != "gone" {
		t.Fatalf("Stop: %v, want gone", err)
	}
}

func TestNotFoundNamingNoIDHalvesTheBatch(t *testing.T) {
	srv, api := fake(t)
	ids := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
	srv.FailWith("TerminateInstances", ec2fake.Fault{Code: "InvalidInstanceID.NotFound", Message: "Some instances do not exist"}, 1)

	res := newClient(t, api).StopBatch(context.Background(), ids)
	for _, id := range ids {
		if res[id] != nil {
			t.Errorf("%s: %v", id, res[id])
		}
	}
	var sizes []int
	for _, r := range terminateRequests(srv) {
		sizes = append(sizes, len(r.InstanceIDs))
	}
	if !slices.Equal(sizes, []int{4, 2, 2}) {
		t.Fatalf("batch sizes %v, want [4 2 2]", sizes)
	}
}

func TestNotFoundNamingNoIDNeverLoops(t *testing.T) {
	srv, api := fake(t)
	ids := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
	srv.FailWith("TerminateInstances", ec2fake.Fault{Code: "InvalidInstanceID.NotFound", Message: "Some instances do not exist"}, 1000)

	res := newClient(t, api).StopBatch(context.Background(), ids)
	for _, id := range ids {
		if kind(res[id]) != "retryable" {
			t.Errorf("%s: %v, want retryable: DescribeInstances sees it running", id, res[id])
		}
	}
	if n := srv.Calls("TerminateInstances"); n != 7 {
		t.Fatalf("%d TerminateInstances calls, want 7 (4, 2+2, 1+1+1+1)", n)
	}
}

func TestProtectedInstancesFailAlone(t *testing.T) {
	srv, api := fake(t)
	var ids []string
	for i := range 6 {
		ids = append(ids, srv.Launch(ec2fake.Instance{Protected: i == 1 || i == 4}))
	}
	res := newClient(t, api).StopBatch(context.Background(), ids)
	for i, id := range ids {
		want := "ok"
		if i == 1 || i == 4 {
			want = "permanent"
		}
		if got := kind(res[id]); got != want {
			t.Errorf("%s: %v, want %s", id, res[id], want)
		}
	}
	if n := srv.Calls("TerminateInstances"); n != 3 {
		t.Fatalf("%d TerminateInstances calls, want 3: one per protected instance named, then the rest", n)
	}
}

func TestStopModeIncorrectState(t *testing.T) {
	srv, api := fake(t)
	pending := srv.Launch(ec2fake.Instance{State: ec2fake.Pending})
	dying := srv.Launch(ec2fake.Instance{State: ec2fake.ShuttingDown})
	running := srv.Launch(ec2fake.Instance{})
	res := newClient(t, api, awsec2.WithMode(awsec2.Stop)).StopBatch(context.Background(), []string{pending, dying, running})
	if kind(res[pending]) != "retryable" || codeOf(res[pending]) != "IncorrectInstanceState" {
		t.Errorf("pending: %v, want retryable IncorrectInstanceState", res[pending])
	}
	if kind(res[dying]) != "gone" {
		t.Errorf("shutting-down: %v, want gone", res[dying])
	}
	if res[running] != nil {
		t.Errorf("running: %v, want nil", res[running])
	}
	if in, _ := srv.Instance(running); in.State != ec2fake.Stopped {
		t.Errorf("running instance is %s, want stopped", in.State)
	}
}

func TestAuthFailureAppliesToEveryID(t *testing.T) {
	srv, api := fake(t)
	ids := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
	srv.Fail("TerminateInstances", "AuthFailure", 1)
	res := newClient(t, api).StopBatch(context.Background(), ids)
	for _, id := range ids {
		if kind(res[id]) != "permanent" || codeOf(res[id]) != "AuthFailure" {
			t.Errorf("%s: %v, want permanent AuthFailure", id, res[id])
		}
	}
	if n := srv.Calls("TerminateInstances"); n != 1 {
		t.Fatalf("%d calls, want 1: bad credentials fail every call", n)
	}
}

func TestUnauthorizedBatchIsSplit(t *testing.T) {
	srv, api := fake(t)
	ids := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
	srv.Fail("TerminateInstances", "UnauthorizedOperation", 1)
	res := newClient(t, api).StopBatch(context.Background(), ids)
	for _, id := range ids {
		if res[id] != nil {
			t.Errorf("%s: %v, want nil: the refusal did not hold for it alone", id, res[id])
		}
	}
	if n := srv.Calls("TerminateInstances"); n != 3 {
		t.Fatalf("%d calls, want 3: the batch, then each half", n)
	}
}

func TestTagConditionFailsOnlyTheUntaggedInstance(t *testing.T) {
	owner := map[string]string{"deployment": "blue"}
	srv, api := fake(t, ec2fake.WithTagCondition("deployment", "blue"))
	var ids []string
	for range 49 {
		ids = append(ids, srv.Launch(ec2fake.Instance{Tags: owner}))
	}
	stray := srv.Launch(ec2fake.Instance{Tags: map[string]string{"deployment": "green"}})
	ids = slices.Insert(ids, 17, stray)

	res := newClient(t, api, awsec2.WithOwner(owner)).StopBatch(context.Background(), ids)
	onlyCulpritFailed(t, srv, res, ids, stray, "permanent", "UnauthorizedOperation")
	var sizes []int
	for _, r := range terminateRequests(srv) {
		sizes = append(sizes, len(r.InstanceIDs))
	}
	if !slices.Equal(sizes, []int{50, 1, 49}) {
		t.Fatalf("TerminateInstances batch sizes %v, want [50 1 49]: the batch, the untagged id, the rest", sizes)
	}
	if n := srv.Calls("DescribeInstances"); n != 1 {
		t.Fatalf("%d DescribeInstances calls, want 1", n)
	}
}

func TestDeniedActionCostsAtMostTwoCallsPerID(t *testing.T) {
	for _, c := range []struct {
		name  string
		owner map[string]string
	}{
		{"WithoutOwner", nil},
		{"WithOwner", map[string]string{"deployment": "blue"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, api := fake(t)
			var ids []string
			for range 8 {
				ids = append(ids, srv.Launch(ec2fake.Instance{Tags: map[string]string{"deployment": "blue"}}))
			}
			srv.Fail("TerminateInstances", "UnauthorizedOperation", 1000)
			var opts []awsec2.Option
			if c.owner != nil {
				opts = append(opts, awsec2.WithOwner(c.owner))
			}
			res := newClient(t, api, opts...).StopBatch(context.Background(), ids)
			for _, id := range ids {
				if kind(res[id]) != "permanent" || codeOf(res[id]) != "UnauthorizedOperation" {
					t.Errorf("%s: %v, want permanent UnauthorizedOperation", id, res[id])
				}
			}
			if n := srv.Calls("TerminateInstances"); n != 2*len(ids)-1 {
				t.Fatalf("%d TerminateInstances calls, want %d: one per node of the halving tree", n, 2*len(ids)-1)
			}
		})
	}
}

func TestTagConditionWithSeveralUntagged(t *testing.T) {
	owner := map[string]string{"deployment": "blue"}
	srv, api := fake(t, ec2fake.WithTagCondition("deployment", "blue"))
	var ids, strays []string
	for i := range 20 {
		tags := owner
		if i%7 == 3 {
			tags = nil
		}
		id := srv.Launch(ec2fake.Instance{Tags: tags})
		ids = append(ids, id)
		if tags == nil {
			strays = append(strays, id)
		}
	}
	res := newClient(t, api, awsec2.WithOwner(owner)).StopBatch(context.Background(), ids)
	for _, id := range ids {
		want := "ok"
		if slices.Contains(strays, id) {
			want = "permanent"
		}
		if got := kind(res[id]); got != want {
			t.Errorf("%s: %v, want %s", id, res[id], want)
		}
	}
	// The batch; the 3 untagged, then halved to single ids (2+1+1+... = 5
	// calls for 3); the 17 others at once.
	if n := srv.Calls("TerminateInstances"); n != 1+5+1 {
		t.Fatalf("%d TerminateInstances calls, want 7", n)
	}
}

func TestOperationNotPermittedNamingNoIDHalvesTheBatch(t *testing.T) {
	srv, api := fake(t)
	ids := []string{srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})}
	srv.FailWith("TerminateInstances", ec2fake.Fault{Code: "OperationNotPermitted", Message: "The operation is not permitted."}, 1)
	for id, err := range newClient(t, api).StopBatch(context.Background(), ids) {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if n := srv.Calls("TerminateInstances"); n != 3 {
		t.Fatalf("%d TerminateInstances calls, want 3: the batch, then each half", n)
	}
}

// onlyCulpritFailed checks that culprit's result has the kind want and
// keeps the EC2 error code (errors.As to a smithy.APIError), and that it is
// still running, while every other id was terminated with a nil result.
func onlyCulpritFailed(t *testing.T, srv *ec2fake.Server, res map[string]error, ids []string, culprit, want, code string) {
	t.Helper()
	for _, id := range ids {
		in, _ := srv.Instance(id)
		if id == culprit {
			var ae smithy.APIError
			if kind(res[id]) != want || !errors.As(res[id], &ae) || ae.ErrorCode() != code {
				t.Errorf("%s: %v, want %s %s", id, res[id], want, code)
			}
			if in.State != ec2fake.Running {
				t.Errorf("%s is %s, want running", id, in.State)
			}
			continue
		}
		if res[id] != nil || in.State != ec2fake.Terminated {
			t.Errorf("%s: %v, %s; want nil and terminated at once", id, res[id], in.State)
		}
	}
}

func TestNotYetVisibleInstanceIsNotGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t, ec2fake.WithPropagationDelay(time.Minute))
		var ids []string
		for range 9 {
			ids = append(ids, srv.Launch(ec2fake.Instance{}))
		}
		fresh := mototest.RunInstances(t, api, 1, nil)[0]
		ids = slices.Insert(ids, 4, fresh)
		c := newClient(t, api)

		res := c.StopBatch(context.Background(), ids)
		onlyCulpritFailed(t, srv, res, ids, fresh, "not found", "InvalidInstanceID.NotFound")
		if err := c.Stop(context.Background(), fresh); kind(err) != "not found" {
			t.Fatalf("Stop of the invisible %s: %v, want not found", fresh, err)
		}

		time.Sleep(time.Minute)
		if res := c.StopBatch(context.Background(), []string{fresh}); res[fresh] != nil {
			t.Fatalf("after the delay: %v, want nil", res[fresh])
		}
		if in, _ := srv.Instance(fresh); in.State != ec2fake.Terminated {
			t.Fatalf("%s is %s after the delay, want terminated", fresh, in.State)
		}
	})
}

func TestNeverSeenIDIsNotFound(t *testing.T) {
	srv, api := fake(t)
	for _, mode := range []awsec2.Mode{awsec2.Terminate, awsec2.Stop} {
		err := newClient(t, api, awsec2.WithMode(mode)).Stop(context.Background(), "i-0000000000000dead")
		if kind(err) != "not found" || errors.Is(err, teardown.ErrGone) {
			t.Errorf("%s of an unknown id: %v, want ErrNotFound: gone only once the caller's settle window has passed", mode, err)
		}
	}
	if n := srv.Calls("DescribeInstances"); n != 2 {
		t.Fatalf("%d DescribeInstances calls, want 2: each NotFound is confirmed", n)
	}
}

func TestDoneContextMakesNoCall(t *testing.T) {
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newClient(t, api).Stop(ctx, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop: %v, want context.Canceled", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("%d calls, want 0", n)
	}
}

func TestConnectionErrorIsRetryable(t *testing.T) {
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{})
	srv.Close()
	if err := newClient(t, api).Stop(context.Background(), id); kind(err) != "retryable" {
		t.Fatalf("Stop against a closed server: %v, want retryable", err)
	}
}

func TestResourceBucketPacesBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t, ec2fake.WithLimits(ec2fake.EC2Limits()))
		ids := make([]string, 1200)
		for i := range ids {
			ids[i] = srv.Launch(ec2fake.Instance{})
		}
		start := time.Now()
		for id, err := range newClient(t, api).StopBatch(context.Background(), ids) {
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
		// 1,000 instances from the full bucket, 200 more at the client's 19/s.
		perSecond := float64(awsec2.DefaultResourceRatePerSecond)
		want := time.Duration(200 / perSecond * float64(time.Second))
		if d := time.Since(start); d < want || d > want+time.Millisecond {
			t.Fatalf("took %v, want %v", d, want)
		}
		for _, r := range srv.Requests() {
			if r.Code != "" {
				t.Fatalf("request answered %s", r.Code)
			}
		}
	})
}
