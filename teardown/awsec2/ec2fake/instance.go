package ec2fake

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Instance states, as EC2 names them.
const (
	Pending      = "pending"
	Running      = "running"
	ShuttingDown = "shutting-down"
	Terminated   = "terminated"
	Stopping     = "stopping"
	Stopped      = "stopped"
)

// stateCodes are EC2's numeric state codes.
var stateCodes = map[string]int{
	Pending: 0, Running: 16, ShuttingDown: 32, Terminated: 48, Stopping: 64, Stopped: 80,
}

// Instance is one fake instance, as [Server.Launch] takes it and
// [Server.Instances] reports it.
type Instance struct {
	ID         string
	State      string
	LaunchTime time.Time
	Tags       map[string]string
	// Protected is the disableApiTermination attribute: TerminateInstances
	// refuses the whole call while it names this instance.
	Protected bool
}

type instance struct {
	Instance
	seq         uint64 // launch order
	reservation string
	imageID     string
	clientToken string
	visibleAt   time.Time // before it, EC2 answers as if the instance did not exist
	links       *links    // its volumes, interfaces and spot request (resources.go)
}

// visible reports whether in has propagated, so that EC2 answers for it.
// It runs with s.mu held.
func (s *Server) visible(in *instance) bool { return !s.now().Before(in.visibleAt) }

// Launch adds an instance directly, as if RunInstances had succeeded and
// become visible, and returns its id. Zero fields take defaults: a fresh
// id, state running, launch time now (on the server's clock). An instance
// with the same id is replaced. Launch panics on a state EC2 does not have.
func (s *Server) Launch(in Instance) string {
	if in.State == "" {
		in.State = Running
	}
	if _, ok := stateCodes[in.State]; !ok {
		panic(fmt.Sprintf("ec2fake: Launch: unknown instance state %q", in.State))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.LaunchTime.IsZero() {
		in.LaunchTime = s.now()
	}
	res := s.nextID("r-")
	if in.ID == "" {
		in.ID = s.nextID("i-")
	}
	s.add(&instance{Instance: in, reservation: res, imageID: "ami-0ec2fa4e00000000"})
	return in.ID
}

// add stores inst under its reservation. It runs with s.mu held.
func (s *Server) add(inst *instance) {
	s.order++
	inst.seq = s.order
	inst.Tags = maps.Clone(inst.Tags)
	if inst.Tags == nil {
		inst.Tags = map[string]string{}
	}
	if old, ok := s.instances[inst.ID]; ok {
		ids := s.reservations[old.reservation]
		s.reservations[old.reservation] = slices.DeleteFunc(ids, func(id string) bool { return id == inst.ID })
	}
	s.instances[inst.ID] = inst
	s.reservations[inst.reservation] = append(s.reservations[inst.reservation], inst.ID)
	s.attachDefaults(inst)
}

// nextID returns a fresh 17-digit id with prefix ("i-" or "r-"). It runs
// with s.mu held.
func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%017x", prefix, s.seq)
}

// Instances returns a snapshot of every instance, terminated ones included,
// in launch order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.sorted()
	out := make([]Instance, len(all))
	for i, in := range all {
		out[i] = in.snapshot()
	}
	return out
}

// Instance returns a snapshot of the instance id, and whether it exists.
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.snapshot(), true
}

// Protect turns on termination protection (disableApiTermination) for id,
// as ModifyInstanceAttribute would. It reports whether id exists.
func (s *Server) Protect(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if ok {
		in.Protected = true
	}
	return ok
}

func (in *instance) snapshot() Instance {
	c := in.Instance
	c.Tags = maps.Clone(in.Tags)
	return c
}

// sorted returns every instance in launch order. It runs with s.mu held.
func (s *Server) sorted() []*instance {
	all := slices.Collect(maps.Values(s.instances))
	slices.SortFunc(all, func(a, b *instance) int { return cmp.Compare(a.seq, b.seq) })
	return all
}

// described returns the instances DescribeInstances can see, in launch
// order. It runs with s.mu held.
func (s *Server) described() []*instance {
	return slices.DeleteFunc(s.sorted(), func(in *instance) bool { return !s.visible(in) })
}
