package soak

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// What instances leave behind. A share of the recorded workspaces get two
// volumes attached after launch, so not deleted on termination, and an
// Elastic IP on their primary interface, all carrying the owner tags and
// the row's id: the API's and the sweepers' stops finish them
// (awsec2.WithDependents; a stop is pending until the termination has freed
// them, and the row keeps its instance until then), or the sweepers reap
// them once their row is removed and holds nothing (sweeper.WithDependents). Every leftoverEvery lifecycles, a
// volume is left detached, tagged with its removed root, as a host that
// detached it and crashed leaves it: only the sweepers reap that one.
const (
	rateEquipped  = 0.20
	leftoverEvery = 50
)

// What the scene-setters added, counted in the figures.
const (
	sceneEquipped  = "workspaces with volumes and an Elastic IP"
	sceneVolumes   = "volumes attached"
	sceneAddresses = "Elastic IPs associated"
	sceneLeftover  = "volumes left detached by removed rows"
)

// ownedTags are the owner tags and row as the resource-id tag.
func ownedTags(row string) map[string]string {
	tags := maps.Clone(owner)
	tags[resourceTag] = row
	return tags
}

// owns reports whether tags carry every owner tag.
func owns(tags map[string]string) bool {
	for k, v := range owner {
		if tags[k] != v {
			return false
		}
	}
	return true
}

// equip decides, once per instance, whether the row just recorded with it
// gets dependents, and adds them on the fake.
func (c *chaos) equip(row, instanceID string) {
	if !c.decide(c.equipped, instanceID, rateEquipped) {
		return
	}
	for _, dev := range []string{"/dev/sdf", "/dev/sdg"} {
		c.fake.AddVolume(ec2fake.Volume{Size: 1, Tags: ownedTags(row), InstanceID: instanceID, Device: dev})
	}
	c.fake.AddAddress(ec2fake.Address{Tags: ownedTags(row), InstanceID: instanceID})
	c.scene.add(sceneEquipped, 1)
	c.scene.add(sceneVolumes, 2)
	c.scene.add(sceneAddresses, 1)
}

// leaveVolume adds a volume attached to nothing, tagged with row.
func (c *chaos) leaveVolume(row string) {
	c.fake.AddVolume(ec2fake.Volume{Size: 1, Tags: ownedTags(row)})
	c.scene.add(sceneLeftover, 1)
}

// dependents is what the fake holds beyond instances.
type dependents struct {
	volumes    []ec2fake.Volume
	addresses  []ec2fake.Address
	interfaces []ec2fake.NetworkInterface
	spots      []ec2fake.SpotRequest
}

func (w *world) readDependents() dependents {
	return dependents{
		volumes:    w.fake.Volumes(),
		addresses:  w.fake.Addresses(),
		interfaces: w.fake.NetworkInterfaces(),
		spots:      w.fake.SpotRequests(),
	}
}

// dependentsLeft lists the owned dependents that outlived their use:
// volumes not deleted, Elastic IPs not released, interfaces not deleted,
// and spot requests still open or active, whose row is removed or gone.
// One still used by a live instance, or whose row's owned instance still
// lives (the sweepers leave those be), is that instance's, which the leak
// checks judge: a protected one keeps its volumes.
func dependentsLeft(d dependents, rows map[string]workspaces.Workspace, instances map[string]ec2fake.Instance) []string {
	liveRow := make(map[string]bool)
	for _, in := range instances {
		if isLive(in) && owns(in.Tags) {
			liveRow[in.Tags[resourceTag]] = true
		}
	}
	var left []string
	consider := func(kind, id, state, instanceID string, tags map[string]string) {
		rid := tags[resourceTag]
		if !owns(tags) || rid == "" || liveRow[rid] {
			return
		}
		if row, ok := rows[rid]; ok && row.Status != workspaces.StatusRemoved {
			return
		}
		if in, ok := instances[instanceID]; ok && isLive(in) {
			return
		}
		left = append(left, fmt.Sprintf("%s: %s %s, row %q, instance %q", id, state, kind, rid, instanceID))
	}
	for _, v := range d.volumes {
		consider("volume", v.ID, v.State, v.InstanceID, v.Tags)
	}
	for _, a := range d.addresses {
		state := "unassociated"
		if a.AssociationID != "" {
			state = "associated"
		}
		consider("Elastic IP", a.AllocationID, state, a.InstanceID, a.Tags)
	}
	for _, n := range d.interfaces {
		consider("interface", n.ID, n.State, n.InstanceID, n.Tags)
	}
	for _, r := range d.spots {
		if r.State == ec2fake.SpotOpen || r.State == ec2fake.SpotActive {
			consider("spot request", r.ID, r.State, r.InstanceID, r.Tags)
		}
	}
	slices.Sort(left)
	return left
}

// pendingDependents counts the dependents left now, reading the rows on
// the test's own connection: what the sweepers still have to reap.
func (w *world) pendingDependents(ctx context.Context) int {
	w.t.Helper()
	rows, err := w.db.Pool.Query(ctx, `SELECT id, status FROM workspaces`)
	if err != nil {
		w.t.Fatal(err)
	}
	byID := make(map[string]workspaces.Workspace)
	for rows.Next() {
		var ws workspaces.Workspace
		if err := rows.Scan(&ws.ID, &ws.Status); err != nil {
			w.t.Fatal(err)
		}
		byID[ws.ID] = ws
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	instances := make(map[string]ec2fake.Instance)
	for _, in := range w.fake.Instances() {
		instances[in.ID] = in
	}
	return len(dependentsLeft(w.readDependents(), byID, instances))
}
