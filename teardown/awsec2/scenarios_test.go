package awsec2_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
)

// The scenarios run against moto and ec2fake alike. Where moto answers
// differently from EC2 (it terminates the ids listed before a protected
// one; it "stops" a terminated instance), the client must still produce
// the right result for every id.
var scenarios = []struct {
	name string
	run  func(t *testing.T, b backend)
}{
	{"OwnedMatchesTagValueNotJustKey", func(t *testing.T, b backend) {
		before := time.Now().Add(-time.Minute)
		ours := mototest.RunInstances(t, b.api, 2, map[string]string{"deployment": "blue", "team": "x"})
		mototest.RunInstances(t, b.api, 2, map[string]string{"deployment": "green"}) // same key, another deployment
		mototest.RunInstances(t, b.api, 1, map[string]string{"team": "x"})
		gone := mototest.RunInstances(t, b.api, 1, map[string]string{"deployment": "blue"})
		if _, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: gone}); err != nil {
			t.Fatal(err)
		}

		c := newClient(t, b.api, awsec2.WithOwner(map[string]string{"deployment": "blue"}))
		got, err := c.Owned(context.Background())
		if err != nil {
			t.Fatalf("Owned: %v", err)
		}
		var ids []string
		for _, in := range got {
			ids = append(ids, in.ID)
			if in.State != "running" || in.LaunchedAt.Before(before) || in.Tags["deployment"] != "blue" || in.Tags["team"] != "x" {
				t.Errorf("instance %+v: want running, launched just now, with both tags", in)
			}
		}
		slices.Sort(ids)
		if want := slices.Sorted(slices.Values(ours)); !slices.Equal(ids, want) {
			t.Fatalf("Owned returned %v, want only the live blue ones %v", ids, want)
		}
	}},
	{"BatchWithTwoUnknownAndThreeReal", func(t *testing.T, b backend) {
		real := mototest.RunInstances(t, b.api, 3, nil)
		unknown := []string{"i-0000000000000dead", "i-0000000000000beef"}
		c := newClient(t, b.api)
		res := c.StopBatch(context.Background(), []string{real[0], unknown[0], real[1], unknown[1], real[2]})
		if len(res) != 5 {
			t.Fatalf("%d results, want 5", len(res))
		}
		for _, id := range real {
			if res[id] != nil {
				t.Errorf("%s: %v, want nil", id, res[id])
			}
			if st := stateOf(t, b.api, id); st != "terminated" && st != "shutting-down" {
				t.Errorf("%s is %s, want terminated", id, st)
			}
		}
		for _, id := range unknown {
			if kind(res[id]) != "not found" || codeOf(res[id]) != "InvalidInstanceID.NotFound" {
				t.Errorf("%s: %v, want not found (retryable), keeping the NotFound API error", id, res[id])
			}
		}
	}},
	{"ProtectedInstanceInBatchFailsAlone", func(t *testing.T, b backend) {
		ids := mototest.RunInstances(t, b.api, 4, nil)
		protected := ids[2]
		if _, err := b.api.ModifyInstanceAttribute(context.Background(), &ec2.ModifyInstanceAttributeInput{
			InstanceId:            aws.String(protected),
			DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)},
		}); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, b.api)
		res := c.StopBatch(context.Background(), ids)
		for _, id := range ids {
			if id == protected {
				if kind(res[id]) != "permanent" || codeOf(res[id]) != "OperationNotPermitted" {
					t.Errorf("protected %s: %v, want permanent OperationNotPermitted", id, res[id])
				}
				if st := stateOf(t, b.api, id); st != "running" {
					t.Errorf("protected %s is %s, want running", id, st)
				}
				continue
			}
			if res[id] != nil {
				t.Errorf("%s: %v, want nil", id, res[id])
			}
			if st := stateOf(t, b.api, id); st != "terminated" {
				t.Errorf("%s is %s, want terminated", id, st)
			}
		}
	}},
	{"ModeStopStops", func(t *testing.T, b backend) {
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		c := newClient(t, b.api, awsec2.WithMode(awsec2.Stop))
		if err := c.Stop(context.Background(), id); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if st := stateOf(t, b.api, id); st != "stopped" {
			t.Fatalf("%s is %s, want stopped", id, st)
		}
	}},
	{"ModeTerminateTerminates", func(t *testing.T, b backend) {
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		c := newClient(t, b.api, awsec2.WithMode(awsec2.Terminate))
		if err := c.Stop(context.Background(), id); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if st := stateOf(t, b.api, id); st != "terminated" {
			t.Fatalf("%s is %s, want terminated", id, st)
		}
		// Again: a terminated instance is done, not an error.
		if err := c.Stop(context.Background(), id); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
	}},
	{"StopModeOnTerminatedInstanceIsDone", func(t *testing.T, b backend) {
		id := mototest.RunInstances(t, b.api, 1, nil)[0]
		if _, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, b.api, awsec2.WithMode(awsec2.Stop))
		if err := c.Stop(context.Background(), id); err != nil && !errors.Is(err, teardown.ErrGone) {
			t.Fatalf("Stop of a terminated instance: %v, want nil or gone", err)
		}
	}},
	{"UnknownIDIsNotFoundNotGone", func(t *testing.T, b backend) {
		// EC2 answers so for a running instance right after launch: only
		// the caller's settle window turns it into gone.
		c := newClient(t, b.api)
		err := teardown.StopWithRetry(context.Background(), c, "i-0123456789abcdef0", teardown.WithBackoff(time.Millisecond, time.Millisecond))
		var re *teardown.RetryError
		if !errors.As(err, &re) || re.Attempts != 3 || !errors.Is(err, teardown.ErrExhausted) || !errors.Is(err, teardown.ErrNotFound) {
			t.Fatalf("StopWithRetry of an unknown id: %v, want 3 attempts exhausted on ErrNotFound", err)
		}
		if err := c.Stop(context.Background(), "i-0123456789abcdef0"); kind(err) != "not found" || codeOf(err) != "InvalidInstanceID.NotFound" {
			t.Fatalf("Stop: %v, want not found", err)
		}
	}},
	{"DescribeSeesEveryStateOfOursOnly", func(t *testing.T, b backend) {
		owner := map[string]string{"deployment": "blue"}
		ours := mototest.RunInstances(t, b.api, 3, owner)
		foreign := mototest.RunInstances(t, b.api, 1, map[string]string{"deployment": "green"})[0]
		if _, err := b.api.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: ours[:1]}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.api.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: ours[1:2]}); err != nil {
			t.Fatal(err)
		}
		unknown := "i-0000000000000dead"
		c := newClient(t, b.api, awsec2.WithOwner(owner))
		got, err := c.Describe(context.Background(), []string{unknown, ours[0], foreign, ours[1], ours[2]})
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		states := map[string]string{}
		for _, in := range got {
			states[in.ID] = in.State
			if in.Tags["deployment"] != "blue" || in.LaunchedAt.IsZero() {
				t.Errorf("%+v: want the owner tag and a launch time", in)
			}
		}
		want := map[string]string{ours[0]: "terminated", ours[1]: "stopped", ours[2]: "running"}
		if !maps.Equal(states, want) {
			t.Fatalf("Describe: %v, want %v: the terminated one included, the unknown and the foreign ones absent", states, want)
		}
	}},
	{"StopAllOverBatches", func(t *testing.T, b backend) {
		ids := mototest.RunInstances(t, b.api, 7, nil)
		c := newClient(t, b.api, awsec2.WithBatchSize(3))
		unknown := "i-0000000000000dead"
		res := teardown.StopAll(context.Background(), c, append(ids, unknown), teardown.WithBatchSize(3), teardown.WithBackoff(time.Millisecond, time.Millisecond))
		for id, err := range res {
			if id == unknown {
				if !errors.Is(err, teardown.ErrNotFound) || errors.Is(err, teardown.ErrGone) {
					t.Errorf("%s: %v, want ErrNotFound after the retries", id, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
		if len(res) != 8 {
			t.Fatalf("%d results, want 8", len(res))
		}
		for _, id := range ids {
			if st := stateOf(t, b.api, id); st != "terminated" {
				t.Errorf("%s is %s", id, st)
			}
		}
	}},
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, be := range backends {
				t.Run(be.name, func(t *testing.T) {
					t.Parallel()
					sc.run(t, be.open(t))
				})
			}
		})
	}
}
