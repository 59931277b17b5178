package sweeper

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/leakless/leakless/events"
)

// TestEndToEndOnMoto runs the sweeper against Postgres and moto with every
// kind of instance a host accumulates, and checks exactly the leaked ones
// are terminated.
func TestEndToEndOnMoto(t *testing.T) {
	h, c, sink := newHostDB(t), newMotoCloud(t), events.NewMemory()

	// Deleted, but the delete path's stop failed: the rows still hold them.
	var removed []string
	for i := range 3 {
		rid := "rm-" + strconv.Itoa(i)
		id := c.launch(t, 1, ownerValue, rid, 0)[0]
		h.put(t, rid, "removed", id)
		removed = append(removed, id)
	}
	// In use.
	live := liveRows(t, h, c, "ws-", 3)
	// Restarted: the row holds the replacement; the old one leaked.
	replaced := c.launch(t, 1, ownerValue, "ws-restarted", 0)
	replacement := c.launch(t, 1, ownerValue, "ws-restarted", 0)
	h.put(t, "ws-restarted", "running", replacement[0])
	// Still provisioning: launched, not yet recorded.
	h.put(t, "ws-provisioning", "provisioning", "")
	provisioning := c.launch(t, 1, ownerValue, "ws-provisioning", 0)
	// Row-gone: launched by requests that crashed before the insert, and
	// one that never got a resource tag.
	crashed := append(c.launch(t, 1, ownerValue, "ws-crashed-0", 0), c.launch(t, 1, ownerValue, "ws-crashed-1", 0)...)
	untagged := c.launch(t, 1, ownerValue, "", 0)
	// Another deployment's, with no rows here.
	theirs := c.launch(t, 2, otherValue, "ws-theirs", 0)

	// moto launches now: a MinAge of a millisecond puts every instance
	// past it, by the database's clock.
	sw := newSweeper(t, h.st, c.ec2, WithEvents(sink), WithRowGone(c.ec2, RowGone{MinAge: time.Millisecond}))
	reps := passes(t, sw, 3)

	want := sorted(removed, replaced, crashed, untagged)
	if got := c.terminated(t); !slices.Equal(got, want) {
		t.Errorf("terminated %v\nwant       %v\n(live %v, replacement %v, provisioning %v, theirs %v)",
			got, want, live, replacement, provisioning, theirs)
	}
	if reps[0].Reaped != 3 || reps[0].RowGoneSeen != 4 || reps[1].RowGoneTerminated != 4 || reps[2].RowGoneSeen != 0 {
		t.Errorf("reports = %+v\nwant 3 reaped and 4 seen, then 4 terminated, then none seen", reps)
	}
	for i := range 3 {
		if inst := h.instanceOf(t, "rm-"+strconv.Itoa(i)); inst != "" {
			t.Errorf("rm-%d still holds %s", i, inst)
		}
	}
	if n := len(ofType(sink, events.TypeRowGoneTerminated)); n != 4 {
		t.Errorf("%d %s events, want 4", n, events.TypeRowGoneTerminated)
	}
}
