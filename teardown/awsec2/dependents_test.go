package awsec2_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

var owner = map[string]string{"app": "leakless-test"}

// withDeps is a client finishing every kind of dependent, owned by owner.
func withDeps(t testing.TB, api awsec2.API, opts ...awsec2.Option) *awsec2.Client {
	t.Helper()
	return newClient(t, api, append([]awsec2.Option{awsec2.WithOwner(owner), awsec2.WithDependents()}, opts...)...)
}

// quick retries fast enough for the fake, long enough for its next call.
var quick = []teardown.Option{teardown.WithMaxAttempts(10), teardown.WithBackoff(time.Millisecond, 10*time.Millisecond)}

// untilFinished stops ids as a caller that keeps its records does (the
// sweeper's re-drive): StopAll, then, after pause, StopAll again for the
// ids still pending, at most rounds times. It returns the last result of
// each id and how many rounds left some id pending.
func untilFinished(ctx context.Context, c teardown.Stopper, ids []string, pause time.Duration, rounds int, opts ...teardown.Option) (map[string]error, int) {
	res := make(map[string]error, len(ids))
	pending := 0
	for range rounds {
		var again []string
		for id, err := range teardown.StopAll(ctx, c, ids, opts...) {
			res[id] = err
			if errors.Is(err, teardown.ErrPending) {
				again = append(again, id)
			}
		}
		if len(again) == 0 {
			break
		}
		pending++
		ids = again
		time.Sleep(pause)
	}
	return res, pending
}

// finished is untilFinished's result for one id, with the fake's pace.
func finished(c teardown.Stopper, id string) error {
	res, _ := untilFinished(context.Background(), c, []string{id}, 5*time.Millisecond, 100, quick...)
	return res[id]
}

func TestDependentsAreFinishedAtTeardown(t *testing.T) {
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{Tags: owner})
	v1 := srv.AddVolume(ec2fake.Volume{InstanceID: id, Device: "/dev/sdf", Tags: owner})
	v2 := srv.AddVolume(ec2fake.Volume{InstanceID: id, Device: "/dev/sdg", Tags: owner})
	eni := srv.AddNetworkInterface(ec2fake.NetworkInterface{InstanceID: id, Tags: owner})
	srv.AddAddress(ec2fake.Address{InstanceID: id, Tags: owner})
	srv.AddAddress(ec2fake.Address{NetworkInterfaceID: eni, Tags: owner})

	c := withDeps(t, api)
	first := c.StopBatch(context.Background(), []string{id})[id]
	if !errors.Is(first, awsec2.ErrDependentsPending) || teardown.IsPermanent(first) {
		t.Fatalf("first call: %v, want retryable ErrDependentsPending: the termination is not yet confirmed", first)
	}
	if err := finished(c, id); err != nil {
		t.Fatalf("StopAll: %v", err)
	}
	if v := srv.Volumes(); len(v) != 0 {
		t.Errorf("volumes left: %+v (want %s and %s deleted)", v, v1, v2)
	}
	if a := srv.Addresses(); len(a) != 0 {
		t.Errorf("addresses left: %+v", a)
	}
	if n := srv.NetworkInterfaces(); len(n) != 0 {
		t.Errorf("interfaces left: %+v", n)
	}
	if in, _ := srv.Instance(id); in.State != ec2fake.Terminated {
		t.Errorf("instance %s, want terminated", in.State)
	}
	if n := srv.Calls("DeleteVolume"); n != 2 {
		t.Errorf("%d DeleteVolume calls, want 2: none before the volumes are available", n)
	}
}

// A volume attached after launch outlives its instance on EC2 and on
// moto alike; the root volume goes with it.
func TestAttachedVolumeIsDeletedOnBothBackends(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t)
			ctx := context.Background()
			id := mototest.RunInstances(t, b.api, 1, owner)[0]
			desc, err := b.api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
			if err != nil {
				t.Fatal(err)
			}
			in := desc.Reservations[0].Instances[0]
			vol, err := b.api.CreateVolume(ctx, &ec2.CreateVolumeInput{
				AvailabilityZone: in.Placement.AvailabilityZone, Size: aws.Int32(1),
				TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume, Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String(owner["app"])}}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.api.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: vol.VolumeId, InstanceId: aws.String(id), Device: aws.String("/dev/sdf")}); err != nil {
				t.Fatal(err)
			}
			c := newClient(t, b.api, awsec2.WithOwner(owner), awsec2.WithDependents(awsec2.Volumes))
			if err := finished(c, id); err != nil {
				t.Fatalf("StopAll: %v", err)
			}
			out, err := b.api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Volumes) != 0 {
				t.Fatalf("%d volumes left, want 0", len(out.Volumes))
			}
		})
	}
}

func TestPersistentSpotRequestIsCancelledBeforeTermination(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t, ec2fake.WithDetachDelay(30*time.Second))
		sir, id := srv.RequestSpot(ec2fake.SpotRequest{Type: ec2fake.SpotPersistent, Tags: owner, InstanceTags: owner})
		c := withDeps(t, api)
		if err := finished(c, id); err != nil {
			t.Fatalf("StopAll: %v", err)
		}
		var order []string
		for _, r := range srv.Requests() {
			if r.Action == "CancelSpotInstanceRequests" || r.Action == "TerminateInstances" {
				order = append(order, r.Action)
			}
		}
		if !slices.Equal(order, []string{"CancelSpotInstanceRequests", "TerminateInstances"}) {
			t.Fatalf("calls %v, want the cancel before the terminate", order)
		}
		time.Sleep(time.Minute) // past the relaunch a live request would make
		reqs := srv.SpotRequests()
		if len(reqs) != 1 || reqs[0].ID != sir || reqs[0].State != ec2fake.SpotCancelled {
			t.Fatalf("spot requests %+v, want %s cancelled", reqs, sir)
		}
		if n := len(srv.Instances()); n != 1 {
			t.Fatalf("%d instances, want 1: a replacement was launched", n)
		}
	})
}

func TestOneTimeSpotRequestIsLeftToClose(t *testing.T) {
	srv, api := fake(t)
	_, id := srv.RequestSpot(ec2fake.SpotRequest{Tags: owner, InstanceTags: owner})
	if err := finished(withDeps(t, api), id); err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls("CancelSpotInstanceRequests"); n != 0 {
		t.Fatalf("%d cancels, want 0: a one-time request closes with its instance", n)
	}
	if r := srv.SpotRequests(); r[0].State != ec2fake.SpotClosed {
		t.Fatalf("request %s, want closed", r[0].State)
	}
}

func TestVolumeInUseWhileShuttingDownIsDeletedOnceAvailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t, ec2fake.WithDetachDelay(5*time.Second))
		id := srv.Launch(ec2fake.Instance{Tags: owner})
		vol := srv.AddVolume(ec2fake.Volume{InstanceID: id, Tags: owner})
		c := withDeps(t, api)
		first := c.StopBatch(context.Background(), []string{id})[id]
		if !errors.Is(first, awsec2.ErrDependentsPending) || !errors.Is(first, teardown.ErrPending) || teardown.IsPermanent(first) {
			t.Fatalf("first stop: %v, want ErrDependentsPending, which is teardown.ErrPending", first)
		}
		res, pending := untilFinished(context.Background(), c, []string{id}, time.Second, 10)
		if err := res[id]; err != nil {
			t.Fatalf("StopAll: %v", err)
		}
		if pending < 3 {
			t.Fatalf("%d rounds pending, want the stop kept open while %s was in use", pending, vol)
		}
		if v := srv.Volumes(); len(v) != 0 {
			t.Fatalf("volumes left %+v", v)
		}
		if n := srv.Calls("DeleteVolume"); n != 1 {
			t.Fatalf("%d DeleteVolume calls, want 1: the volume is described until it is available", n)
		}
	})
}

func TestAnotherOwnersDependentsAreNeverTouched(t *testing.T) {
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{Tags: owner})
	theirs := map[string]string{"app": "someone-else"}
	vol := srv.AddVolume(ec2fake.Volume{InstanceID: id, Tags: theirs})
	eni := srv.AddNetworkInterface(ec2fake.NetworkInterface{InstanceID: id, Tags: theirs})
	alloc := srv.AddAddress(ec2fake.Address{InstanceID: id, Tags: theirs})
	sir, spotID := srv.RequestSpot(ec2fake.SpotRequest{Type: ec2fake.SpotPersistent, Tags: theirs, InstanceTags: owner})
	c := withDeps(t, api)
	res, _ := untilFinished(context.Background(), c, []string{id, spotID}, 5*time.Millisecond, 100, quick...)
	if res[id] != nil || res[spotID] != nil {
		t.Fatalf("results %v, want both done: what is not ours is not waited for", res)
	}
	for _, action := range []string{"DeleteVolume", "DeleteNetworkInterface", "ReleaseAddress", "CancelSpotInstanceRequests"} {
		if n := srv.Calls(action); n != 0 {
			t.Errorf("%d %s calls on another owner's resources", n, action)
		}
	}
	if !slices.ContainsFunc(srv.Volumes(), func(v ec2fake.Volume) bool { return v.ID == vol }) ||
		!slices.ContainsFunc(srv.NetworkInterfaces(), func(n ec2fake.NetworkInterface) bool { return n.ID == eni }) ||
		!slices.ContainsFunc(srv.Addresses(), func(a ec2fake.Address) bool { return a.AllocationID == alloc }) ||
		!slices.ContainsFunc(srv.SpotRequests(), func(r ec2fake.SpotRequest) bool { return r.ID == sir && r.State != ec2fake.SpotCancelled }) {
		t.Fatalf("another owner's dependent was removed")
	}

	// Untagged lifts the check for its kind only.
	srv2, api2 := fake(t)
	id2 := srv2.Launch(ec2fake.Instance{Tags: owner})
	srv2.AddVolume(ec2fake.Volume{InstanceID: id2})
	eni2 := srv2.AddNetworkInterface(ec2fake.NetworkInterface{InstanceID: id2})
	c2 := newClient(t, api2, awsec2.WithOwner(owner), awsec2.WithDependents(awsec2.Volumes.Untagged(), awsec2.Interfaces))
	if err := finished(c2, id2); err != nil {
		t.Fatal(err)
	}
	if n := len(srv2.Volumes()); n != 0 {
		t.Errorf("%d untagged volumes left with Volumes.Untagged()", n)
	}
	if !slices.ContainsFunc(srv2.NetworkInterfaces(), func(n ec2fake.NetworkInterface) bool { return n.ID == eni2 }) {
		t.Errorf("the untagged interface was deleted though only volumes were Untagged")
	}
}

func TestDependentFailuresAreClassified(t *testing.T) {
	for _, c := range []struct {
		action, code string
		want         string
	}{
		{"DeleteVolume", "UnauthorizedOperation", "permanent"},
		{"DeleteVolume", "AuthFailure", "permanent"},
		{"DeleteVolume", "VolumeInUse", "retryable"},
		{"DeleteVolume", "RequestLimitExceeded", "retryable"},
		{"DeleteVolume", "InvalidVolume.NotFound", "ok"},
		{"DeleteNetworkInterface", "DependencyViolation", "retryable"},
		{"DeleteNetworkInterface", "InvalidNetworkInterfaceID.NotFound", "ok"},
		{"ReleaseAddress", "InvalidIPAddress.InUse", "retryable"},
		{"ReleaseAddress", "InvalidAllocationID.NotFound", "ok"},
		{"ReleaseAddress", "UnauthorizedOperation", "permanent"},
		{"CancelSpotInstanceRequests", "UnauthorizedOperation", "permanent"},
		{"CancelSpotInstanceRequests", "InternalError", "retryable"},
	} {
		t.Run(c.action+"/"+c.code, func(t *testing.T) {
			srv, api := fake(t)
			// One dependent of the kind the action finishes.
			var id string
			switch c.action {
			case "CancelSpotInstanceRequests":
				_, id = srv.RequestSpot(ec2fake.SpotRequest{Type: ec2fake.SpotPersistent, Tags: owner, InstanceTags: owner})
			case "DeleteVolume":
				id = srv.Launch(ec2fake.Instance{Tags: owner})
				srv.AddVolume(ec2fake.Volume{InstanceID: id, Tags: owner})
			case "DeleteNetworkInterface":
				id = srv.Launch(ec2fake.Instance{Tags: owner})
				srv.AddNetworkInterface(ec2fake.NetworkInterface{InstanceID: id, Tags: owner})
			case "ReleaseAddress":
				id = srv.Launch(ec2fake.Instance{Tags: owner})
				srv.AddAddress(ec2fake.Address{InstanceID: id, Tags: owner})
			}
			cl := withDeps(t, api)
			srv.Fail(c.action, c.code, 1)
			var err error
			for range 3 { // learn, then confirm and finish: until the call is made
				if err = cl.Stop(context.Background(), id); srv.Calls(c.action) > 0 {
					break
				}
			}
			if got := kind(err); got != c.want {
				t.Fatalf("%s answering %s: %s (%v), want %s", c.action, c.code, got, err, c.want)
			}
			if c.action == "CancelSpotInstanceRequests" {
				if in, _ := srv.Instance(id); in.State != ec2fake.Running {
					t.Fatalf("instance %s after its spot request could not be cancelled, want running", in.State)
				}
			}
		})
	}
}

func TestInUseBeyondTheTimeoutIsPermanent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, api := fakeInProcess(t)
		id := srv.Launch(ec2fake.Instance{Tags: owner})
		srv.AddVolume(ec2fake.Volume{InstanceID: id, Tags: owner})
		c := withDeps(t, api, awsec2.WithInUseTimeout(time.Minute))
		srv.Fail("DeleteVolume", "VolumeInUse", 100)
		if err := c.Stop(context.Background(), id); !errors.Is(err, awsec2.ErrDependentsPending) {
			t.Fatalf("first stop: %v", err)
		}
		err := c.Stop(context.Background(), id)
		if kind(err) != "retryable" {
			t.Fatalf("in use just after the termination: %v, want retryable", err)
		}
		time.Sleep(2 * time.Minute)
		if err := c.Stop(context.Background(), id); kind(err) != "permanent" {
			t.Fatalf("in use two minutes after the termination: %v, want permanent", err)
		}
	})
}

func TestOneDescribeInstancesPerBatch(t *testing.T) {
	srv, api := fake(t)
	var ids []string
	for range 3 {
		id := srv.Launch(ec2fake.Instance{Tags: owner})
		srv.AddVolume(ec2fake.Volume{InstanceID: id, Tags: owner})
		ids = append(ids, id)
	}
	c := withDeps(t, api)
	c.StopBatch(context.Background(), ids)
	if n := srv.Calls("DescribeInstances"); n != 1 {
		t.Fatalf("%d DescribeInstances calls for a batch of 3, want 1", n)
	}
	res := c.StopBatch(context.Background(), ids)
	for _, id := range ids {
		if res[id] != nil {
			t.Fatalf("%s: %v", id, res[id])
		}
	}
	if n := srv.Calls("DescribeInstances"); n != 2 {
		t.Fatalf("%d DescribeInstances calls after two rounds, want 2: the second confirms the termination", n)
	}
	if n := srv.Calls("TerminateInstances"); n != 1 {
		t.Fatalf("%d TerminateInstances calls, want 1: a confirmed termination is not sent again", n)
	}
}

func TestWithDependentsConfiguration(t *testing.T) {
	_, api := fake(t)
	for name, opts := range map[string][]awsec2.Option{
		"stop mode":    {awsec2.WithOwner(owner), awsec2.WithMode(awsec2.Stop), awsec2.WithDependents()},
		"no owner":     {awsec2.WithDependents(awsec2.Volumes)},
		"unknown kind": {awsec2.WithOwner(owner), awsec2.WithDependents(awsec2.Dependent(1 << 5))},
		"bad delete":   {awsec2.WithOwner(owner), awsec2.WithDependents(), awsec2.WithDeleteRateLimit(0, 1)},
		"bad timeout":  {awsec2.WithOwner(owner), awsec2.WithDependents(), awsec2.WithInUseTimeout(0)},
	} {
		if _, err := awsec2.New(api, opts...); !errors.Is(err, teardown.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	if _, err := awsec2.New(api, awsec2.WithDependents(awsec2.Volumes.Untagged())); err != nil {
		t.Errorf("every kind untagged needs no owner: %v", err)
	}
	if _, err := awsec2.New(onlyInstances{api}, awsec2.WithOwner(owner), awsec2.WithDependents()); !errors.Is(err, teardown.ErrConfig) {
		t.Errorf("an API without the dependents' calls: %v, want ErrConfig", err)
	}
	if got := (awsec2.Volumes | awsec2.SpotRequests.Untagged()).String(); got != "volumes|spot-requests(untagged)" {
		t.Errorf("String %q", got)
	}
}

// onlyInstances is an API with the instance calls alone.
type onlyInstances struct{ awsec2.API }

func ExampleWithDependents() {
	srv := ec2fake.New()
	defer srv.Close()
	owner := map[string]string{"app": "prod"}
	id := srv.Launch(ec2fake.Instance{Tags: owner})
	srv.AddVolume(ec2fake.Volume{InstanceID: id, Tags: owner}) // attached after launch: outlives the instance
	srv.AddAddress(ec2fake.Address{InstanceID: id, Tags: owner})

	c, err := awsec2.New(sdkFor(srv), awsec2.WithOwner(owner), awsec2.WithDependents())
	if err != nil {
		panic(err)
	}
	// The first stop cancels, terminates, and answers that the dependents
	// wait for the termination to finish: the caller keeps its record
	// (the sweeper re-drives it) and stops the instance again later.
	err = teardown.StopAll(context.Background(), c, []string{id})[id]
	fmt.Println(errors.Is(err, teardown.ErrPending), len(srv.Volumes()), len(srv.Addresses()))
	err = teardown.StopAll(context.Background(), c, []string{id})[id]
	fmt.Println(err, len(srv.Volumes()), len(srv.Addresses()))
	// Output:
	// true 1 1
	// <nil> 0 0
}

func TestOwnedDependentsMarksWhatIsInUse(t *testing.T) {
	srv, api := fake(t, ec2fake.WithDetachDelay(time.Hour))
	theirs := map[string]string{"app": "someone-else"}
	id := srv.Launch(ec2fake.Instance{Tags: owner})
	freeVol := srv.AddVolume(ec2fake.Volume{Tags: owner})
	srv.AddVolume(ec2fake.Volume{InstanceID: id, Tags: owner}) // in use
	srv.AddVolume(ec2fake.Volume{Tags: theirs})
	freeAddr := srv.AddAddress(ec2fake.Address{Tags: owner})
	srv.AddAddress(ec2fake.Address{InstanceID: id, Tags: owner}) // associated
	freeENI := srv.AddNetworkInterface(ec2fake.NetworkInterface{Tags: owner})
	srv.AddNetworkInterface(ec2fake.NetworkInterface{InstanceID: id, Tags: owner})
	srv.RequestSpot(ec2fake.SpotRequest{Type: ec2fake.SpotPersistent, Tags: owner}) // active, its instance live
	openSIR, spotID := srv.RequestSpot(ec2fake.SpotRequest{Type: ec2fake.SpotPersistent, Tags: owner})
	c := newClient(t, api, awsec2.WithOwner(owner))
	if err := c.Stop(context.Background(), spotID); err != nil { // the request reopens, waiting to relaunch
		t.Fatal(err)
	}
	got, err := c.OwnedDependents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var free []teardown.Dependent
	var ids []string
	inUse := 0
	for _, d := range got {
		if d.InUse {
			inUse++
			continue
		}
		free = append(free, d)
		ids = append(ids, d.Kind+" "+d.ID)
	}
	slices.Sort(ids)
	want := []string{"address " + freeAddr, "interface " + freeENI, "spot_request " + openSIR, "volume " + freeVol}
	if !slices.Equal(ids, want) {
		t.Fatalf("listed free %v, want %v", ids, want)
	}
	if inUse != 4 { // the attached volume and interface, the associated address, the request with a live instance
		t.Fatalf("%d listed in use, want 4 (another owner's volume never listed)", inUse)
	}
	got = free
	res := c.ReapDependents(context.Background(), got)
	for _, d := range got {
		if res[d.ID] != nil {
			t.Errorf("reap %s: %v", d.ID, res[d.ID])
		}
	}
	again := c.ReapDependents(context.Background(), got[:1])
	if err := again[got[0].ID]; !errors.Is(err, teardown.ErrGone) {
		t.Errorf("second reap of %s: %v, want ErrGone", got[0].ID, err)
	}
	if _, err := newClient(t, api).OwnedDependents(context.Background()); !errors.Is(err, awsec2.ErrNoOwner) {
		t.Errorf("without owner tags: %v, want ErrNoOwner", err)
	}
}

// A retry after a failed termination does not describe the instance
// again when it was learned owing nothing: one call per attempt, as
// without dependents. One that owes something is described again, to see
// its termination.
func TestRetryOfAnInstanceOwingNothingIsNotDescribedAgain(t *testing.T) {
	srv, api := fake(t)
	plain := srv.Launch(ec2fake.Instance{Tags: owner})
	c := withDeps(t, api)
	srv.Fail("TerminateInstances", "InternalError", 2)
	if err := finished(c, plain); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n, m := srv.Calls("DescribeInstances"), srv.Calls("TerminateInstances"); n != 1 || m != 3 {
		t.Errorf("%d DescribeInstances, %d TerminateInstances; want 1 and 3: the retries send the termination alone", n, m)
	}

	equipped := srv.Launch(ec2fake.Instance{Tags: owner})
	srv.AddVolume(ec2fake.Volume{InstanceID: equipped, Tags: owner})
	before := srv.Calls("DescribeInstances")
	srv.Fail("TerminateInstances", "InternalError", 1)
	if err := finished(c, equipped); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := srv.Calls("DescribeInstances") - before; n < 2 {
		t.Errorf("%d DescribeInstances for the instance owing a volume, want one per call until its termination is seen", n)
	}
}

// A failed DescribeInstances holds back only the instances it was to
// learn: one already learned owing nothing is terminated all the same.
func TestAFailedDescribeHoldsBackOnlyWhatItWasToLearn(t *testing.T) {
	srv, api := fake(t)
	learned := srv.Launch(ec2fake.Instance{Tags: owner})
	c := withDeps(t, api)
	srv.Fail("TerminateInstances", "InternalError", 1)
	if err := c.StopBatch(context.Background(), []string{learned})[learned]; err == nil {
		t.Fatal("the first stop succeeded, want the scripted InternalError")
	}
	fresh := srv.Launch(ec2fake.Instance{Tags: owner})
	srv.Fail("DescribeInstances", "InternalError", 1)
	res := c.StopBatch(context.Background(), []string{learned, fresh})
	if res[learned] != nil || res[fresh] == nil || teardown.IsPermanent(res[fresh]) {
		t.Fatalf("results %v, want %s stopped and %s retryable (its dependents unread)", res, learned, fresh)
	}
	if in, _ := srv.Instance(fresh); in.State != ec2fake.Running {
		t.Errorf("%s is %s, want running: nothing is terminated before its dependents are read", fresh, in.State)
	}
}
