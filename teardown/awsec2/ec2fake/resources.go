package ec2fake

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What an instance leaves behind: the fake's EBS volumes, Elastic IPs,
// network interfaces and spot requests (volumes.go, addresses.go,
// interfaces.go, spot.go), and what termination does to them.

// The fake's one network: every instance is placed in DefaultZone and
// DefaultSubnet.
const (
	DefaultZone   = "us-east-1a"
	DefaultSubnet = "subnet-0ec2fa4e00000001"
	defaultVPC    = "vpc-0ec2fa4e00000001"
)

// resources is the server's state beyond instances. It is used with s.mu
// held.
type resources struct {
	detachDelay time.Duration
	seq         map[string]uint64 // last number handed out, by id prefix
	created     uint64            // creation order across kinds

	volumes    map[string]*volume
	addresses  map[string]*address // by allocation id
	interfaces map[string]*netInterface
	spots      map[string]*spotRequest

	due []transition // what termination has set in motion, not yet done
}

// transition is a change EC2 makes some time after an instance is
// terminated: its volumes detach, its interfaces are freed, its persistent
// spot request relaunches.
type transition struct {
	at  time.Time
	run func(s *Server)
}

// links are an instance's dependents, in the order EC2 lists them.
type links struct {
	blockDevices []*volume
	nics         []*netInterface // by device index; [0] is the primary
	spotRequest  string
}

// WithDetachDelay makes a terminated instance keep its volumes attached
// and its network interfaces in use for d after TerminateInstances, by the
// server's clock, as EC2 does while the instance shuts down: DeleteVolume
// answers VolumeInUse, DeleteNetworkInterface says the interface is in
// use, and ReleaseAddress answers InvalidIPAddress.InUse for an address
// still on its primary interface. A persistent spot request relaunches its
// terminated instance after the same delay. The default, 0, frees them by
// the next call.
func WithDetachDelay(d time.Duration) Option {
	return func(s *Server) { s.res.detachDelay = max(d, 0) }
}

// init makes the maps. It runs with s.mu held, or before the server serves.
func (r *resources) init() {
	if r.seq != nil {
		return
	}
	r.seq = map[string]uint64{}
	r.volumes = map[string]*volume{}
	r.addresses = map[string]*address{}
	r.interfaces = map[string]*netInterface{}
	r.spots = map[string]*spotRequest{}
}

// newID returns a fresh id with prefix and 17 hex digits (8 for spot
// requests, as EC2's are). Each prefix counts apart from instances, so
// instance ids do not depend on what else was created. It runs with s.mu
// held.
func (s *Server) newID(prefix string) string {
	s.res.init()
	s.res.seq[prefix]++
	n := s.res.seq[prefix]
	if prefix == "sir-" {
		return fmt.Sprintf("%s%08x", prefix, n)
	}
	return fmt.Sprintf("%s%017x", prefix, n)
}

// nextCreated is the creation order of a new dependent. It runs with s.mu
// held.
func (s *Server) nextCreated() uint64 {
	s.res.init()
	s.res.created++
	return s.res.created
}

// advance carries out every transition that is due. It runs with s.mu
// held, before every action.
func (s *Server) advance() {
	if len(s.res.due) == 0 {
		return
	}
	now := s.now()
	var later []transition
	var ready []transition
	for _, t := range s.res.due {
		if t.at.After(now) {
			later = append(later, t)
		} else {
			ready = append(ready, t)
		}
	}
	s.res.due = later
	for _, t := range ready {
		t.run(s)
	}
}

// after schedules run for d from now on the server's clock. It runs with
// s.mu held.
func (s *Server) after(d time.Duration, run func(s *Server)) {
	s.res.due = append(s.res.due, transition{at: s.now().Add(d), run: run})
}

// linked returns in's links, making them on first use. It runs with s.mu
// held.
func (s *Server) linked(in *instance) *links {
	if in.links == nil {
		in.links = &links{}
	}
	return in.links
}

// attachDefaults gives a new instance what EC2 gives every instance: a
// primary network interface, deleted with it. It runs with s.mu held.
func (s *Server) attachDefaults(in *instance) {
	s.res.init()
	l := s.linked(in)
	if len(l.nics) > 0 {
		return
	}
	eni := s.createInterface(DefaultSubnet, "Primary network interface", nil)
	s.attachInterface(eni, in, 0, true)
}

// prepareLaunch checks the block-device mappings and network interfaces
// of a RunInstances call, before anything is launched, and returns what
// gives the launched instances their root volume and the volumes and
// interfaces the call asked for, tagged as its TagSpecifications say. It
// runs with s.mu held.
func (s *Server) prepareLaunch(q query, count int) (func(ins []*instance), *Fault) {
	volTags := specTags(q, "TagSpecification", "volume")
	eniTags := specTags(q, "TagSpecification", "network-interface")
	type blockDev struct {
		device string
		size   int
		dot    bool
	}
	var devs []blockDev
	for _, i := range q.indexes("BlockDeviceMapping") {
		p := "BlockDeviceMapping." + strconv.Itoa(i)
		dev := q.get(p + ".DeviceName")
		if dev == "" {
			return nil, missing(p + ".DeviceName")
		}
		size := 8
		if v := q.get(p + ".Ebs.VolumeSize"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 16384 {
				return nil, invalidValue("Invalid value '%s' for VolumeSize", v)
			}
			size = n
		}
		// EC2 deletes a volume that RunInstances made with the instance
		// unless told otherwise.
		devs = append(devs, blockDev{dev, size, q.get(p+".Ebs.DeleteOnTermination") != "false"})
	}
	type nicSpec struct {
		eni   *netInterface
		index int
		dot   bool
	}
	var nics []nicSpec
	for _, i := range q.indexes("NetworkInterface") {
		p := "NetworkInterface." + strconv.Itoa(i)
		id := q.get(p + ".NetworkInterfaceId")
		if id == "" {
			continue
		}
		if count != 1 {
			return nil, &Fault{Code: "InvalidParameterCombination", Message: "Network interfaces and an instance-level count greater than one cannot be specified together"}
		}
		eni, f := s.lookupInterface(id)
		if f != nil {
			return nil, f
		}
		if eni.attachment != nil {
			return nil, &Fault{Code: "InvalidNetworkInterface.InUse", Message: fmt.Sprintf("Interface: [%s] in use.", id)}
		}
		idx, err := strconv.Atoi(q.get(p + ".DeviceIndex"))
		if err != nil || idx < 1 {
			return nil, invalidValue("The fake attaches existing interfaces at device index 1 or more; got '%s'", q.get(p+".DeviceIndex"))
		}
		nics = append(nics, nicSpec{eni, idx, q.get(p+".DeleteOnTermination") == "true"})
	}
	return func(ins []*instance) {
		for _, in := range ins {
			l := s.linked(in)
			if !slices.ContainsFunc(devs, func(d blockDev) bool { return d.device == rootDevice }) {
				root := s.createVolume(8, DefaultZone, volTags)
				s.attachVolume(root, in, rootDevice, true)
			}
			for _, d := range devs {
				v := s.createVolume(d.size, DefaultZone, volTags)
				s.attachVolume(v, in, d.device, d.dot)
			}
			for _, n := range nics {
				s.attachInterface(n.eni, in, n.index, n.dot)
			}
			for k, v := range eniTags {
				l.nics[0].tags[k] = v
			}
		}
	}, nil
}

// rootDevice is the device name of an instance's root volume.
const rootDevice = "/dev/xvda"

// terminated sets in motion what EC2 does once an instance has been
// terminated: after the detach delay its volumes detach (those marked
// DeleteOnTermination are deleted), its interfaces are freed (likewise),
// and its spot request closes or, when persistent and not cancelled,
// relaunches. It runs with s.mu held.
func (s *Server) terminated(in *instance) {
	l := in.links
	if l == nil {
		return
	}
	for _, v := range l.blockDevices {
		if v.attachment != nil {
			v.attachment.state = "detaching"
		}
	}
	if sr := s.res.spots[l.spotRequest]; sr != nil && sr.instanceID == in.ID {
		s.spotInstanceEnded(sr)
	}
	id := in.ID
	s.after(s.res.detachDelay, func(s *Server) {
		in, ok := s.instances[id]
		if !ok || in.links == nil {
			return
		}
		for _, v := range in.links.blockDevices {
			s.detachVolume(v)
		}
		in.links.blockDevices = nil
		for _, eni := range in.links.nics {
			s.detachInterface(eni)
		}
		in.links.nics = nil
	})
}

// specTags returns the tags of the TagSpecifications (under prefix) for
// resource type typ.
func specTags(q query, prefix, typ string) map[string]string {
	tags := map[string]string{}
	for _, i := range q.indexes(prefix) {
		p := prefix + "." + strconv.Itoa(i)
		if q.get(p+".ResourceType") != typ {
			continue
		}
		for _, t := range q.tags(p + ".Tag") {
			tags[t.Key] = t.Value
		}
	}
	return tags
}

// checkSpecTypes refuses TagSpecifications for a resource type the action
// does not create, as EC2 does.
func checkSpecTypes(q query, allowed ...string) *Fault {
	for _, i := range q.indexes("TagSpecification") {
		typ := q.get("TagSpecification." + strconv.Itoa(i) + ".ResourceType")
		if !slices.Contains(allowed, typ) {
			return invalidValue("'%s' is not a valid taggable resource type for this operation.", typ)
		}
	}
	return nil
}

// xmlTags renders tags sorted by key.
func xmlTags(tags map[string]string) []xmlTag {
	var out []xmlTag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, xmlTag{Key: k, Value: tags[k]})
	}
	return out
}

// timestamp is EC2's wire format for times.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// matchTag matches the tag:KEY and tag-key filters against tags; ok is
// false when name is neither.
func matchTag(tags map[string]string, name, pattern string) (matched, ok bool) {
	if name == "tag-key" {
		for k := range tags {
			if match(pattern, k) {
				return true, true
			}
		}
		return false, true
	}
	if key, isTag := strings.CutPrefix(name, "tag:"); isTag && key != "" {
		v, has := tags[key]
		return has && match(pattern, v), true
	}
	return false, false
}

// filterAll applies filters as EC2 does (every filter matches when any of
// its values does), with field giving a resource's values for a filter
// name. An unknown name is an InvalidParameterValue fault.
func filterAll[T any](items []T, filters []filter, known []string, tags func(T) map[string]string, field func(T, string) []string) ([]T, *Fault) {
	for _, f := range filters {
		_, isTag := matchTag(nil, f.name, "")
		if !isTag && !slices.Contains(known, f.name) {
			return nil, invalidValue("The filter '%s' is invalid", f.name)
		}
	}
	var out []T
	for _, it := range items {
		ok := true
		for _, f := range filters {
			hit := slices.ContainsFunc(f.values, func(pattern string) bool {
				if m, isTag := matchTag(tags(it), f.name, pattern); isTag {
					return m
				}
				return slices.ContainsFunc(field(it, f.name), func(v string) bool { return match(pattern, v) })
			})
			if !hit {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, it)
		}
	}
	return out, nil
}

// page cuts hits to one page by MaxResults (lo to hi) and NextToken, as
// the instances' describe does.
func page[T any](q query, hits []T, lo, hi int) ([]T, string, *Fault) {
	limit, offset := len(hits), 0
	if q.has("MaxResults") {
		n, err := strconv.Atoi(q.get("MaxResults"))
		if err != nil || n < lo || n > hi {
			return nil, "", invalidValue("Value ( %s ) for parameter maxResults is invalid. Expecting a value between %d and %d.", q.get("MaxResults"), lo, hi)
		}
		limit = n
	}
	if tok := q.get("NextToken"); tok != "" {
		n, ok := parseToken(tok)
		if !ok || n > len(hits) {
			return nil, "", invalidValue("Invalid value '%s' for nextToken", tok)
		}
		offset = n
	}
	end := min(len(hits), offset+limit)
	next := ""
	if end < len(hits) {
		next = token(end)
	}
	return hits[offset:end], next, nil
}

// ordered is a dependent that knows its creation order.
type ordered interface{ creation() uint64 }

func (v *volume) creation() uint64       { return v.order }
func (n *netInterface) creation() uint64 { return n.order }
func (a *address) creation() uint64      { return a.order }
func (r *spotRequest) creation() uint64  { return r.order }

// inOrder returns m's values in creation order.
func inOrder[T ordered](m map[string]T) []T {
	all := slices.Collect(maps.Values(m))
	slices.SortFunc(all, func(a, b T) int { return cmp.Compare(a.creation(), b.creation()) })
	return all
}

// snapshotAll returns snap of every value of the map pick chooses, in
// creation order, once due transitions are done.
func snapshotAll[T ordered, S any](s *Server, pick func(*resources) map[string]T, snap func(T) S) []S {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.res.init()
	all := inOrder(pick(&s.res))
	out := make([]S, len(all))
	for i, v := range all {
		out[i] = snap(v)
	}
	return out
}

// listing is how a Describe action finds, filters and pages its
// resources.
type listing[T ordered] struct {
	idParam string // the ids' parameter, such as "VolumeId" (VolumeId.N)
	// idSet names the ids in EC2's answer to ids given with MaxResults;
	// "" when EC2 allows the two together.
	idSet   string
	all     map[string]T
	lookup  func(string) (T, *Fault)
	filters []string // the filter names known besides tag:KEY and tag-key
	tags    func(T) map[string]string
	field   func(T, string) []string // a resource's values for a filter name
	lo, hi  int                      // MaxResults' bounds
}

// run answers q: the page of matching resources and the next page's token.
func (l listing[T]) run(q query) ([]T, string, *Fault) {
	ids := unique(q.list(l.idParam))
	if len(ids) > 0 && l.idSet != "" && q.has("MaxResults") {
		return nil, "", &Fault{Code: "InvalidParameterCombination", Message: fmt.Sprintf("The parameter %s cannot be used with the parameter maxResults", l.idSet)}
	}
	pool, f := named(ids, l.all, l.lookup)
	if f != nil {
		return nil, "", f
	}
	hits, f := filterAll(pool, q.filters(), l.filters, l.tags, l.field)
	if f != nil {
		return nil, "", f
	}
	return page(q, hits, l.lo, l.hi)
}

// named resolves the ids a Describe call names with lookup, failing the
// whole call on the first that does not resolve, as EC2 does; without
// ids it returns every value of all. Either way, in creation order.
func named[T ordered](ids []string, all map[string]T, lookup func(string) (T, *Fault)) ([]T, *Fault) {
	if len(ids) == 0 {
		return inOrder(all), nil
	}
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		v, f := lookup(id)
		if f != nil {
			return nil, f
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(a.creation(), b.creation()) })
	return out, nil
}

// validResourceID reports whether id is prefix and 8 or 17 lower-case
// hex digits.
func validResourceID(id, prefix string) bool {
	hex, ok := strings.CutPrefix(id, prefix)
	if !ok || (len(hex) != 8 && len(hex) != 17) {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// malformed is EC2's answer to an id of the wrong form.
func malformed(code, id, prefix string) *Fault {
	return &Fault{Code: code, Message: fmt.Sprintf("Invalid id: %q (expecting %q)", id, prefix+"...")}
}

// authorizeTags applies the tag conditions of [WithTagCondition] to one
// resource an action names. It runs with s.mu held.
func (s *Server) authorizeTags(action, reqID string, tags map[string]string) *Fault {
	for k, v := range s.conditions {
		if got, ok := tags[k]; !ok || got != v {
			return unauthorized(action, reqID)
		}
	}
	return nil
}

type xmlEBSDevice struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlBlockDevice struct {
	DeviceName string       `xml:"deviceName"`
	EBS        xmlEBSDevice `xml:"ebs"`
}

type xmlPlacement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	Tenancy          string `xml:"tenancy"`
}

// xmlInstanceLinks are the parts of an instance's description that name
// its dependents: block devices, network interfaces (with an Elastic IP's
// association) and spot request.
type xmlInstanceLinks struct {
	Placement             *xmlPlacement         `xml:"placement,omitempty"`
	SubnetID              string                `xml:"subnetId,omitempty"`
	VpcID                 string                `xml:"vpcId,omitempty"`
	PrivateIPAddress      string                `xml:"privateIpAddress,omitempty"`
	IPAddress             string                `xml:"ipAddress,omitempty"`
	RootDeviceType        string                `xml:"rootDeviceType,omitempty"`
	RootDeviceName        string                `xml:"rootDeviceName,omitempty"`
	BlockDevices          []xmlBlockDevice      `xml:"blockDeviceMapping>item"`
	InstanceLifecycle     string                `xml:"instanceLifecycle,omitempty"`
	SpotInstanceRequestID string                `xml:"spotInstanceRequestId,omitempty"`
	NetworkInterfaces     []xmlNetworkInterface `xml:"networkInterfaceSet>item"`
}

// xml describes l as DescribeInstances does. A terminated instance whose
// dependents have gone lists none, as on EC2.
func (l *links) xml() xmlInstanceLinks {
	if l == nil {
		return xmlInstanceLinks{}
	}
	x := xmlInstanceLinks{
		Placement: &xmlPlacement{AvailabilityZone: DefaultZone, Tenancy: "default"},
		SubnetID:  DefaultSubnet, VpcID: defaultVPC, RootDeviceType: "ebs", RootDeviceName: rootDevice,
	}
	for _, v := range l.blockDevices {
		if a := v.attachment; a != nil {
			x.BlockDevices = append(x.BlockDevices, xmlBlockDevice{
				DeviceName: a.device,
				EBS:        xmlEBSDevice{VolumeID: v.id, Status: a.state, AttachTime: timestamp(a.at), DeleteOnTermination: a.dot},
			})
		}
	}
	for _, n := range l.nics {
		x.NetworkInterfaces = append(x.NetworkInterfaces, n.xml(true))
	}
	if len(l.nics) > 0 {
		x.PrivateIPAddress = l.nics[0].privateIP
		if a := l.nics[0].address; a != nil {
			x.IPAddress = a.publicIP
		}
	}
	if l.spotRequest != "" {
		x.InstanceLifecycle, x.SpotInstanceRequestID = "spot", l.spotRequest
	}
	return x
}
