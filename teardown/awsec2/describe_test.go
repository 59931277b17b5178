package awsec2_test

import (
	"context"
	"slices"
	"testing"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func TestDescribeChunksAndPages(t *testing.T) {
	srv, api := fake(t)
	owner := map[string]string{"deployment": "blue"}
	var ids, want []string
	for i := range 450 {
		tags := owner
		if i%10 == 0 {
			tags = map[string]string{"deployment": "green"}
		}
		id := srv.Launch(ec2fake.Instance{Tags: tags, State: []string{ec2fake.Running, ec2fake.Stopped, ec2fake.Terminated}[i%3]})
		ids = append(ids, id)
		if i%10 != 0 {
			want = append(want, id)
		}
	}
	asked := append(slices.Clone(ids), ids[0], ids[1], "i-0000000000000dead", "bogus")
	got, err := newClient(t, api, awsec2.WithOwner(owner)).Describe(context.Background(), asked)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	var gotIDs []string
	for _, in := range got {
		gotIDs = append(gotIDs, in.ID)
		if st, _ := srv.Instance(in.ID); in.State != st.State || in.Tags["deployment"] != "blue" || !in.LaunchedAt.Equal(st.LaunchTime.Truncate(1e6)) {
			t.Errorf("%+v, want state %s, the owner tag and launch time %v", in, st.State, st.LaunchTime)
		}
	}
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("Describe returned %d instances, want the %d blue ones once each, in launch order", len(gotIDs), len(want))
	}
	// 451 well-formed distinct ids: chunks of 200, 200 and 51.
	if n := srv.Calls("DescribeInstances"); n != 3 {
		t.Fatalf("%d DescribeInstances calls, want 3", n)
	}
	for _, r := range srv.Requests() {
		if r.Code != "" {
			t.Fatalf("%s answered %s", r.Action, r.Code)
		}
	}
}

func TestDescribeEmptyMakesNoCall(t *testing.T) {
	srv, api := fake(t)
	got, err := newClient(t, api, awsec2.WithOwner(map[string]string{"k": "v"})).Describe(context.Background(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Describe(nil): %v, %v; want nothing", got, err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("%d calls made, want 0", n)
	}
}

func TestDescribeKeepsTheAPIError(t *testing.T) {
	srv, api := fake(t)
	id := srv.Launch(ec2fake.Instance{})
	srv.Fail("DescribeInstances", "InternalError", 1)
	_, err := newClient(t, api, awsec2.WithOwner(map[string]string{"k": "v"})).Describe(context.Background(), []string{id})
	if codeOf(err) != "InternalError" || teardown.IsPermanent(err) {
		t.Fatalf("Describe: %v, want the InternalError API error", err)
	}
}
