package ec2fake_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// Where moto and EC2 differ, the fake follows EC2.

func TestProtectedInstanceFailsWholeBatch(t *testing.T) {
	srv, api := newFake(t)
	a := srv.Launch(ec2fake.Instance{})
	b := srv.Launch(ec2fake.Instance{Protected: true})
	c := srv.Launch(ec2fake.Instance{})
	_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{a, b, c}}, noRetry)
	code, msg := apiError(t, err)
	if code != "OperationNotPermitted" || !strings.Contains(msg, "'"+b+"'") {
		t.Fatalf("got %s: %q, want OperationNotPermitted naming %s", code, msg, b)
	}
	for _, in := range srv.Instances() {
		if in.State != ec2fake.Running {
			t.Errorf("%s is %s, want running: EC2 terminates none of the batch", in.ID, in.State)
		}
	}
}

func TestStopOfTerminatedInstanceIsIncorrectState(t *testing.T) {
	srv, api := newFake(t)
	live := srv.Launch(ec2fake.Instance{})
	dead := srv.Launch(ec2fake.Instance{State: ec2fake.Terminated})
	_, err := api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{live, dead}}, noRetry)
	code, msg := apiError(t, err)
	if code != "IncorrectInstanceState" || !strings.Contains(msg, dead) {
		t.Fatalf("got %s: %q, want IncorrectInstanceState naming %s", code, msg, dead)
	}
	if in, _ := srv.Instance(live); in.State != ec2fake.Running {
		t.Fatalf("%s is %s, want running: the call failed as a whole", live, in.State)
	}
}

func TestCreateTagsOnUnknownInstanceIsNotFound(t *testing.T) {
	_, api := newFake(t)
	_, err := api.CreateTags(context.Background(), &ec2.CreateTagsInput{
		Resources: []string{"i-0000000000000dead"},
		Tags:      []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
	}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidInstanceID.NotFound" {
		t.Fatalf("code %s, want InvalidInstanceID.NotFound", code)
	}
}

func TestMalformedIDIsMalformed(t *testing.T) {
	srv, api := newFake(t)
	id := srv.Launch(ec2fake.Instance{})
	_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id, "bogus"}}, noRetry)
	if code, _ := apiError(t, err); code != "InvalidInstanceID.Malformed" {
		t.Fatalf("code %s, want InvalidInstanceID.Malformed", code)
	}
}

func TestClientTokenIsIdempotent(t *testing.T) {
	srv, api := newFake(t)
	run := func() []string {
		out, err := api.RunInstances(context.Background(), &ec2.RunInstancesInput{
			ImageId: aws.String("ami-1"), MinCount: aws.Int32(2), MaxCount: aws.Int32(2), ClientToken: aws.String("tok-1"),
		})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, in := range out.Instances {
			ids = append(ids, *in.InstanceId)
		}
		return ids
	}
	first, second := run(), run()
	if strings.Join(first, ",") != strings.Join(second, ",") {
		t.Fatalf("same client token launched %v then %v", first, second)
	}
	if n := len(srv.Instances()); n != 2 {
		t.Fatalf("%d instances exist, want 2", n)
	}
}

func TestPaging(t *testing.T) {
	srv, api := newFake(t)
	for range 12 {
		srv.Launch(ec2fake.Instance{})
	}
	var sizes []int
	var token *string
	for {
		out, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range out.Reservations {
			n += len(r.Instances)
		}
		sizes = append(sizes, n)
		if token = out.NextToken; token == nil {
			break
		}
	}
	if len(sizes) != 3 || sizes[0] != 5 || sizes[1] != 5 || sizes[2] != 2 {
		t.Fatalf("page sizes %v, want [5 5 2]", sizes)
	}
	for _, bad := range []*ec2.DescribeInstancesInput{
		{MaxResults: aws.Int32(4)},
		{MaxResults: aws.Int32(1001)},
		{NextToken: aws.String("not-a-token")},
		{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{"x"}}}},
	} {
		_, err := api.DescribeInstances(context.Background(), bad, noRetry)
		if code, _ := apiError(t, err); code != "InvalidParameterValue" {
			t.Errorf("%+v: code %s, want InvalidParameterValue", bad, code)
		}
	}
}

func TestUnknownActionIsInvalidAction(t *testing.T) {
	srv, _ := newFake(t)
	status, body := rawPost(t, srv.Client(), srv.URL(), url.Values{"Action": {"RebootInstances"}})
	if status != http.StatusBadRequest || !strings.Contains(body, "<Code>InvalidAction</Code>") {
		t.Fatalf("status %d, body %s", status, body)
	}
}

func TestLaunchAndSnapshots(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv, api := newFake(t, ec2fake.WithClock(func() time.Time { return at }))
	tags := map[string]string{"k": "v"}
	id := srv.Launch(ec2fake.Instance{Tags: tags, State: ec2fake.Stopped})
	tags["k"] = "changed" // the server keeps its own copy

	in, ok := srv.Instance(id)
	if !ok || in.State != ec2fake.Stopped || !in.LaunchTime.Equal(at) || in.Tags["k"] != "v" {
		t.Fatalf("Instance(%s) = %+v, %v", id, in, ok)
	}
	in.Tags["k"] = "mutated" // nor does a snapshot share it
	if again, _ := srv.Instance(id); again.Tags["k"] != "v" {
		t.Fatalf("a snapshot shares the server's tags")
	}
	out, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	got := out.Reservations[0].Instances[0]
	if !got.LaunchTime.Equal(at) || got.State.Name != types.InstanceStateNameStopped {
		t.Fatalf("described launch time %v state %s", got.LaunchTime, got.State.Name)
	}
	if !srv.Protect(id) || srv.Protect("i-0000000000000dead") {
		t.Fatal("Protect reports existence wrongly")
	}
	if in, _ := srv.Instance(id); !in.Protected {
		t.Fatal("Protect did not protect")
	}
	if _, ok := srv.Instance("i-0000000000000dead"); ok {
		t.Fatal("Instance reports an unknown id")
	}
}

func TestFail(t *testing.T) {
	srv, api := newFake(t)
	id := srv.Launch(ec2fake.Instance{})
	srv.Fail("StopInstances", "InternalError", 1)
	srv.FailWith("StopInstances", ec2fake.Fault{Code: "Custom", Message: "custom words", Status: 418}, 1)
	srv.FailWith("StopInstances", ec2fake.Fault{Status: http.StatusBadGateway}, 1)

	stop := func() error {
		_, err := api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{id}}, noRetry)
		return err
	}
	for _, want := range []struct {
		status int
		code   string
		msg    string
	}{
		{500, "InternalError", "An internal error has occurred"},
		{418, "Custom", "custom words"},
		{502, "UnknownError", "UnknownError"}, // no envelope: the SDK has no code to report
	} {
		err := stop()
		code, msg := apiError(t, err)
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != want.status || code != want.code || msg != want.msg {
			t.Fatalf("got %v, want %d %s %q", err, want.status, want.code, want.msg)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("fourth call: %v, want success once the script is used up", err)
	}
	if n := srv.Calls("StopInstances"); n != 4 {
		t.Fatalf("Calls = %d, want 4", n)
	}
}

func TestFaultMessagesNameTheRequestIDs(t *testing.T) {
	srv, api := newFake(t)
	a, b := srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})
	for code, want := range map[string]string{
		"InvalidInstanceID.NotFound": "The instance IDs '" + a + ", " + b + "' do not exist",
		"OperationNotPermitted":      "The instance '" + a + "' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
		"RequestLimitExceeded":       "Request limit exceeded.",
	} {
		srv.Fail("TerminateInstances", code, 1)
		_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{a, b}}, noRetry)
		if gotCode, msg := apiError(t, err); gotCode != code || msg != want {
			t.Errorf("%s: got %s %q, want %q", code, gotCode, msg, want)
		}
	}
	for _, in := range srv.Instances() {
		if in.State != ec2fake.Running {
			t.Errorf("%s is %s: an injected fault must have no effect", in.ID, in.State)
		}
	}
}

func TestSetErrorRateIsSeeded(t *testing.T) {
	failures := func(seed uint64) []bool {
		srv, api := newFake(t, ec2fake.WithSeed(seed))
		srv.SetErrorRate("DescribeInstances", "Unavailable", 0.5)
		var out []bool
		for range 200 {
			_, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{}, noRetry)
			if err != nil {
				if code, _ := apiError(t, err); code != "Unavailable" {
					t.Fatalf("code %s, want Unavailable", code)
				}
			}
			out = append(out, err != nil)
		}
		srv.SetErrorRate("DescribeInstances", "Unavailable", 0)
		if _, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{}, noRetry); err != nil {
			t.Fatalf("rate 0 still fails: %v", err)
		}
		return out
	}
	a, b := failures(7), failures(7)
	n := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("call %d differs between two runs with one seed", i)
		}
		if a[i] {
			n++
		}
	}
	if n < 70 || n > 130 {
		t.Fatalf("%d of 200 calls failed at rate 0.5", n)
	}
}

func TestSDKRequestHeaderIsRecorded(t *testing.T) {
	srv, api := newFake(t)
	srv.Fail("DescribeInstances", "InternalError", 2)
	// The SDK's default retryer: three attempts, all recorded.
	if _, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	var got []string
	for _, r := range srv.Requests() {
		got = append(got, r.SDKRequest)
	}
	want := []string{"attempt=1; max=3", "attempt=2; max=3", "attempt=3; max=3"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Amz-Sdk-Request headers %q, want %q", got, want)
	}
	rs := srv.Requests()
	if rs[0].Code != "InternalError" || rs[0].Status != 500 || rs[2].Code != "" || rs[2].Status != 200 {
		t.Fatalf("recorded outcomes %+v", rs)
	}
}

func TestRequestsRecordIDsAsSent(t *testing.T) {
	srv, api := newFake(t)
	a, b := srv.Launch(ec2fake.Instance{}), srv.Launch(ec2fake.Instance{})
	if _, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{b, a, b}}); err != nil {
		t.Fatal(err)
	}
	r := srv.Requests()[0]
	if r.Action != "TerminateInstances" || strings.Join(r.InstanceIDs, ",") != b+","+a+","+b {
		t.Fatalf("recorded %+v", r)
	}
}

// clock is a settable clock for the token buckets.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTokenBuckets(t *testing.T) {
	throttled := func(t *testing.T, err error) bool {
		t.Helper()
		if err == nil {
			return false
		}
		code, _ := apiError(t, err)
		var re *smithyhttp.ResponseError
		if code != "RequestLimitExceeded" || !errors.As(err, &re) || re.HTTPStatusCode() != 503 {
			t.Fatalf("got %v, want RequestLimitExceeded with HTTP 503", err)
		}
		return true
	}
	t.Run("TerminateRequests", func(t *testing.T) {
		clk := &clock{now: time.Unix(0, 0)}
		srv, api := newFake(t, ec2fake.WithLimits(ec2fake.EC2Limits()), ec2fake.WithClock(clk.Now))
		id := srv.Launch(ec2fake.Instance{})
		call := func() error {
			_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, noRetry)
			return err
		}
		for i := range 100 {
			if throttled(t, call()) {
				t.Fatalf("call %d throttled; the bucket holds 100", i+1)
			}
		}
		if !throttled(t, call()) {
			t.Fatal("call 101 passed an empty bucket")
		}
		clk.Advance(199 * time.Millisecond)
		if !throttled(t, call()) {
			t.Fatal("passed after 199ms; one token takes 200ms at 5/s")
		}
		clk.Advance(time.Millisecond)
		if throttled(t, call()) {
			t.Fatal("throttled after 200ms at 5/s: a throttled call must not consume tokens")
		}
	})
	t.Run("TerminateResources", func(t *testing.T) {
		clk := &clock{now: time.Unix(0, 0)}
		srv, api := newFake(t, ec2fake.WithLimits(ec2fake.EC2Limits()), ec2fake.WithClock(clk.Now))
		ids := make([]string, 1001)
		for i := range ids {
			ids[i] = srv.Launch(ec2fake.Instance{})
		}
		call := func(ids []string) error {
			_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids}, noRetry)
			return err
		}
		if throttled(t, call(ids[:1000])) {
			t.Fatal("1,000 instances throttled; the resource bucket holds 1,000")
		}
		if !throttled(t, call(ids[1000:])) {
			t.Fatal("instance 1,001 passed an empty resource bucket")
		}
		clk.Advance(50 * time.Millisecond)
		if throttled(t, call(ids[1000:])) {
			t.Fatal("throttled after 50ms at 20 instances/s")
		}
		if in, _ := srv.Instance(ids[1000]); in.State != ec2fake.Terminated {
			t.Fatalf("%s is %s after its call passed", in.ID, in.State)
		}
	})
	t.Run("Categories", func(t *testing.T) {
		clk := &clock{now: time.Unix(0, 0)}
		srv, api := newFake(t, ec2fake.WithLimits(ec2fake.EC2Limits()), ec2fake.WithClock(clk.Now))
		id := srv.Launch(ec2fake.Instance{})
		for _, c := range []struct {
			name  string
			burst int
			call  func() error
		}{
			{"DescribeInstances", 100, func() error {
				_, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{}, noRetry)
				return err
			}},
			{"CreateTags", 50, func() error {
				_, err := api.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}, noRetry)
				return err
			}},
			{"StopInstances", 50, func() error {
				_, err := api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{id}}, noRetry)
				return err
			}},
		} {
			for i := range c.burst {
				if throttled(t, c.call()) {
					t.Fatalf("%s call %d throttled; its bucket holds %d", c.name, i+1, c.burst)
				}
			}
			if !throttled(t, c.call()) {
				t.Fatalf("%s call %d passed an empty bucket", c.name, c.burst+1)
			}
		}
	})
	t.Run("Off", func(t *testing.T) {
		srv, api := newFake(t)
		srv.Launch(ec2fake.Instance{})
		for range 300 {
			if _, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{}, noRetry); err != nil {
				t.Fatalf("throttled without WithLimits: %v", err)
			}
		}
	})
}

func TestLimitsScaled(t *testing.T) {
	l := ec2fake.EC2Limits().Scaled(10)
	if l.TerminateCalls != (ec2fake.Bucket{Capacity: 100, PerSecond: 50}) || l.TerminateResources != (ec2fake.Bucket{Capacity: 1000, PerSecond: 200}) ||
		l.StopResources.PerSecond != 200 || l.MutatingCalls.PerSecond != 50 || l.NonMutatingCalls.PerSecond != 200 {
		t.Fatalf("Scaled(10) = %+v", l)
	}
}

func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := inProcess(t)
		id := srv.Launch(ec2fake.Instance{})
		srv.SetLatency("TerminateInstances", 3*time.Second)

		start := time.Now()
		if _, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, noRetry); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("answer took %v, want 3s", d)
		}

		other := srv.Launch(ec2fake.Instance{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{other}}, noRetry)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the caller's deadline", err)
		}
		synctest.Wait()
		if in, _ := srv.Instance(other); in.State != ec2fake.Running {
			t.Fatalf("%s is %s: a call abandoned during its delay must have no effect", other, in.State)
		}
		if r := srv.Requests()[1]; r.Status != 0 {
			t.Fatalf("abandoned call recorded with status %d, want 0", r.Status)
		}
	})
}

func TestCloseEndsDelayedCalls(t *testing.T) {
	srv, api := newFake(t)
	id := srv.Launch(ec2fake.Instance{})
	srv.SetLatency("TerminateInstances", time.Hour)
	errc := make(chan error, 1)
	go func() {
		_, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}, noRetry)
		errc <- err
	}()
	for srv.Calls("TerminateInstances") == 0 {
		time.Sleep(time.Millisecond) // wait for the call to arrive
	}
	srv.Close()
	if err := <-errc; err == nil {
		t.Fatal("a call cut off by Close succeeded")
	}
	if in, _ := srv.Instance(id); in.State != ec2fake.Running {
		t.Fatalf("%s is %s after Close cut its call off", id, in.State)
	}
}

func TestTagsCopiedPerInstance(t *testing.T) {
	srv, api := newFake(t)
	ids := mototest.RunInstances(t, api, 2, map[string]string{"app": "x"})
	if _, err := api.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: ids[:1], Tags: []types.Tag{{Key: aws.String("only"), Value: aws.String("first")}}}); err != nil {
		t.Fatal(err)
	}
	a, _ := srv.Instance(ids[0])
	b, _ := srv.Instance(ids[1])
	if !maps.Equal(a.Tags, map[string]string{"app": "x", "only": "first"}) || !maps.Equal(b.Tags, map[string]string{"app": "x"}) {
		t.Fatalf("tags %v and %v: instances of one launch must not share a tag map", a.Tags, b.Tags)
	}
}

// A server on the same machine answers before net/http has finished with
// the request body; Client must keep the connection whole all the same.
func TestClientSurvivesFastAnswersToLargeRequests(t *testing.T) {
	srv := ec2fake.New()
	defer srv.Close()
	api := ec2.New(ec2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL()),
		HTTPClient:   srv.Client(), // no other wrapping
		Credentials:  mototest.Config("", nil).Credentials,
	})
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = srv.Launch(ec2fake.Instance{})
	}
	for i := range 40 {
		if _, err := api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ids}, noRetry); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
}
