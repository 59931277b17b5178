package sweeper

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// In Stop mode the instances the re-drive stops stay owned, stopped, and
// held by no row once their rows are cleared. Counted as row-gone
// candidates they would be stopped again every pass and trip the breakers
// every pass, so a genuinely leaked running instance would never be reaped.
func TestStopModeRowGoneReapsTheRunningOrphanNotTheStoppedRows(t *testing.T) {
	h, sink := newHostDB(t), events.NewMemory()
	fake := ec2fake.New()
	t.Cleanup(fake.Close)
	c := newCloud(t, ec2.NewFromConfig(mototest.Config(fake.URL(), fake.Client())), awsec2.WithMode(awsec2.Stop))
	c.fake = fake

	liveRows(t, h, c, "ws-live-", 2)
	for i, id := range c.launch(t, 3, ownerValue, "", old) {
		h.put(t, "ws-del-"+string(rune('a'+i)), "removed", id)
	}
	orphan := c.launch(t, 1, ownerValue, "ws-lost", old)[0]
	sw := rowGoneSweeper(t, h.st, c, sink, RowGone{})

	passes(t, sw, 4)
	if st, _ := fake.Instance(orphan); st.State != ec2fake.Stopped {
		t.Errorf("orphan %s is %s after 4 passes, want stopped; aborts: %v", orphan, st.State, abortReasons(sink))
	}
	if got := abortReasons(sink); len(got) != 0 {
		t.Errorf("row-gone aborted %v; want no aborts", got)
	}
}
