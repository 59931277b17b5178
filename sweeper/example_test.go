package sweeper_test

import (
	"context"
	"fmt"
	"time"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
)

var workspaces = store.Table{Name: "workspaces", ID: "id", Status: "status", InstanceID: "instance_id", Removed: "removed"}

// A delete whose stop failed left ws-1 removed but still holding its
// instance; one pass stops it and clears the row. The live ws-2 is left
// alone.
func Example() {
	st := store.NewMemory(workspaces)
	st.Put(store.Row{ID: "ws-1", Status: "removed", InstanceID: "i-0aaa"})
	st.Put(store.Row{ID: "ws-2", Status: "running", InstanceID: "i-0bbb"})
	ec2 := teardown.StopperFunc(func(ctx context.Context, id string) error {
		fmt.Println("terminate", id)
		return nil
	})
	sink := events.NewMemory()

	sw, err := sweeper.New(st, ec2, sweeper.WithEvents(sink))
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := sw.SweepOnce(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("pending %d, reaped %d, failed %d\n", rep.Pending, rep.Reaped, rep.Failed)
	row, _ := st.Get("ws-1")
	fmt.Printf("ws-1 holds %q\n", row.InstanceID)
	for _, e := range sink.Events() {
		fmt.Println(e.Type, e.Subject)
	}
	// Output:
	// terminate i-0aaa
	// pending 1, reaped 1, failed 0
	// ws-1 holds ""
	// sweeper.reaped ws-1
}

// owned is an Inventory with a fixed list, standing in for EC2.
type owned []teardown.Instance

func (o owned) Owned(context.Context) ([]teardown.Instance, error) { return o, nil }

// Row-gone reaping in dry run: an instance tagged for ws-9, whose row was
// never written, is reported once two passes agree, and nothing is
// terminated.
func ExampleWithRowGone() {
	st := store.NewMemory(workspaces)
	st.Put(store.Row{ID: "ws-1", Status: "running", InstanceID: "i-0aaa"})
	launched := time.Now().Add(-time.Hour)
	inv := owned{
		{ID: "i-0aaa", State: "running", LaunchedAt: launched, Tags: map[string]string{"leakless:resource-id": "ws-1"}},
		{ID: "i-0fff", State: "running", LaunchedAt: launched, Tags: map[string]string{"leakless:resource-id": "ws-9"}},
	}
	ec2 := teardown.StopperFunc(func(ctx context.Context, id string) error {
		fmt.Println("terminate", id)
		return nil
	})
	sink := events.NewMemory()

	sw, err := sweeper.New(st, ec2, sweeper.WithEvents(sink),
		sweeper.WithRowGone(inv, sweeper.RowGone{DryRun: true}))
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		rep, _ := sw.SweepOnce(context.Background())
		fmt.Printf("seen %d, terminated %d\n", rep.RowGoneSeen, rep.RowGoneTerminated)
	}
	for _, e := range sink.Events() {
		fmt.Println(e.Type, e.Subject, e.Payload["instance_id"])
	}
	// Output:
	// seen 1, terminated 0
	// seen 1, terminated 0
	// sweeper.row_gone_detected ws-9 i-0fff
	// sweeper.dry_run ws-9 i-0fff
}
