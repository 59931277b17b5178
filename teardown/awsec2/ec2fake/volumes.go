package ec2fake

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Volume states, as EC2 names them.
const (
	VolumeAvailable = "available"
	VolumeInUse     = "in-use"
)

// Volume is one fake EBS volume, as [Server.AddVolume] takes it and
// [Server.Volumes] reports it.
type Volume struct {
	ID               string
	State            string // available or in-use
	Size             int    // GiB
	Type             string // gp2 (CreateVolume's default), gp3, io1, io2, st1, sc1 or standard
	AvailabilityZone string
	CreateTime       time.Time
	Tags             map[string]string
	// InstanceID is the instance it is attached to, or "". Device and
	// DeleteOnTermination describe that attachment; AttachmentState is
	// attached, or detaching while its terminated instance shuts down.
	InstanceID          string
	Device              string
	DeleteOnTermination bool
	AttachmentState     string
}

type volume struct {
	id         string
	size       int
	typ        string
	zone       string
	created    time.Time
	order      uint64
	tags       map[string]string
	attachment *volumeAttachment
}

type volumeAttachment struct {
	instanceID string
	device     string
	dot        bool // DeleteOnTermination
	state      string
	at         time.Time
}

func (v *volume) state() string {
	if v.attachment != nil {
		return VolumeInUse
	}
	return VolumeAvailable
}

func (v *volume) snapshot() Volume {
	out := Volume{ID: v.id, State: v.state(), Size: v.size, Type: v.typ, AvailabilityZone: v.zone, CreateTime: v.created, Tags: maps.Clone(v.tags)}
	if a := v.attachment; a != nil {
		out.InstanceID, out.Device, out.DeleteOnTermination, out.AttachmentState = a.instanceID, a.device, a.dot, a.state
	}
	return out
}

// createVolume makes an available volume. It runs with s.mu held.
func (s *Server) createVolume(size int, zone string, tags map[string]string) *volume {
	v := &volume{id: s.newID("vol-"), size: size, typ: defaultVolumeType, zone: zone, created: s.now(), order: s.nextCreated(), tags: maps.Clone(tags)}
	if v.tags == nil {
		v.tags = map[string]string{}
	}
	s.res.volumes[v.id] = v
	return v
}

// attachVolume attaches v to in at device. It runs with s.mu held.
func (s *Server) attachVolume(v *volume, in *instance, device string, dot bool) {
	v.attachment = &volumeAttachment{instanceID: in.ID, device: device, dot: dot, state: "attached", at: s.now()}
	l := s.linked(in)
	l.blockDevices = append(l.blockDevices, v)
}

// detachVolume ends v's attachment to its terminated instance: deleted
// with it when DeleteOnTermination is set, available otherwise. It runs
// with s.mu held.
func (s *Server) detachVolume(v *volume) {
	if v.attachment == nil {
		return
	}
	dot := v.attachment.dot
	v.attachment = nil
	if dot {
		delete(s.res.volumes, v.id)
	}
}

// defaultVolumeType is CreateVolume's volume type when none is given.
const defaultVolumeType = "gp2"

// volumeTypes are the types CreateVolume takes.
var volumeTypes = []string{"standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"}

// AddVolume adds a volume directly, as if CreateVolume (and, when
// v.InstanceID is set, AttachVolume) had succeeded, and returns its id.
// Zero fields take defaults: a fresh id, 8 GiB, gp2, DefaultZone, created now,
// device /dev/sdf. State and AttachmentState are ignored. AddVolume
// panics when v.InstanceID names no instance.
func (s *Server) AddVolume(v Volume) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.init()
	if v.Size == 0 {
		v.Size = 8
	}
	if v.AvailabilityZone == "" {
		v.AvailabilityZone = DefaultZone
	}
	vol := s.createVolume(v.Size, v.AvailabilityZone, v.Tags)
	if v.Type != "" {
		vol.typ = v.Type
	}
	if v.ID != "" {
		delete(s.res.volumes, vol.id)
		vol.id = v.ID
		s.res.volumes[vol.id] = vol
	}
	if !v.CreateTime.IsZero() {
		vol.created = v.CreateTime
	}
	if v.InstanceID != "" {
		in, ok := s.instances[v.InstanceID]
		if !ok {
			panic(fmt.Sprintf("ec2fake: AddVolume: no instance %q", v.InstanceID))
		}
		if v.Device == "" {
			v.Device = "/dev/sdf"
		}
		s.attachVolume(vol, in, v.Device, v.DeleteOnTermination)
	}
	return vol.id
}

// Volumes returns a snapshot of every volume that exists, in creation order.
func (s *Server) Volumes() []Volume {
	return snapshotAll(s, func(r *resources) map[string]*volume { return r.volumes }, (*volume).snapshot)
}

type xmlVolumeAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlVolume struct {
	VolumeID         string                `xml:"volumeId"`
	Size             int                   `xml:"size"`
	SnapshotID       string                `xml:"snapshotId"`
	AvailabilityZone string                `xml:"availabilityZone"`
	Status           string                `xml:"status"`
	CreateTime       string                `xml:"createTime"`
	Attachments      []xmlVolumeAttachment `xml:"attachmentSet>item"`
	Tags             []xmlTag              `xml:"tagSet>item"`
	VolumeType       string                `xml:"volumeType"`
	Encrypted        bool                  `xml:"encrypted"`
	MultiAttach      bool                  `xml:"multiAttachEnabled"`
}

func (v *volume) xml() xmlVolume {
	x := xmlVolume{
		VolumeID: v.id, Size: v.size, AvailabilityZone: v.zone, Status: v.state(),
		CreateTime: timestamp(v.created), Tags: xmlTags(v.tags), VolumeType: v.typ,
	}
	if a := v.attachment; a != nil {
		x.Attachments = []xmlVolumeAttachment{a.xml(v.id)}
	}
	return x
}

func (a *volumeAttachment) xml(volumeID string) xmlVolumeAttachment {
	return xmlVolumeAttachment{VolumeID: volumeID, InstanceID: a.instanceID, Device: a.device, Status: a.state, AttachTime: timestamp(a.at), DeleteOnTermination: a.dot}
}

type createVolumeResponse struct {
	RequestID string `xml:"requestId"`
	xmlVolume
}

type attachVolumeResponse struct {
	RequestID string `xml:"requestId"`
	xmlVolumeAttachment
}

type describeVolumesResponse struct {
	RequestID string      `xml:"requestId"`
	Volumes   []xmlVolume `xml:"volumeSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

// volumeNotFound is EC2's InvalidVolume.NotFound for id.
func volumeNotFound(id string) *Fault {
	return &Fault{Code: "InvalidVolume.NotFound", Message: fmt.Sprintf("The volume '%s' does not exist.", id)}
}

// lookupVolume resolves one volume id. It runs with s.mu held.
func (s *Server) lookupVolume(id string) (*volume, *Fault) {
	if !validResourceID(id, "vol-") {
		return nil, malformed("InvalidVolumeID.Malformed", id, "vol-")
	}
	v, ok := s.res.volumes[id]
	if !ok {
		return nil, volumeNotFound(id)
	}
	return v, nil
}

func (s *Server) createVolumeAction(q query, reqID string) (any, *Fault) {
	zone := q.get("AvailabilityZone")
	if zone == "" {
		return nil, missing("AvailabilityZone")
	}
	if !strings.HasPrefix(zone, "us-east-1") || len(zone) != len("us-east-1a") {
		return nil, &Fault{Code: "InvalidZone.NotFound", Message: fmt.Sprintf("The zone '%s' does not exist.", zone)}
	}
	size := 0
	if v := q.get("Size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 16384 {
			return nil, invalidValue("Volume of %s GiB is too large or too small.", v)
		}
		size = n
	}
	if size == 0 {
		return nil, missing("size")
	}
	typ := defaultVolumeType
	if t := q.get("VolumeType"); t != "" {
		if !slices.Contains(volumeTypes, t) {
			return nil, invalidValue("Value (%s) for parameter volumeType is invalid. Valid values: %s", t, strings.Join(volumeTypes, ", "))
		}
		typ = t
	}
	if f := checkSpecTypes(q, "volume"); f != nil {
		return nil, f
	}
	s.res.init()
	v := s.createVolume(size, zone, specTags(q, "TagSpecification", "volume"))
	v.typ = typ
	x := v.xml()
	x.Status = "creating" // EC2's answer; the volume is available by the next call
	return &createVolumeResponse{RequestID: reqID, xmlVolume: x}, nil
}

func (s *Server) attachVolumeAction(q query, reqID string) (any, *Fault) {
	for _, p := range []string{"Device", "InstanceId", "VolumeId"} {
		if q.get(p) == "" {
			return nil, missing(p)
		}
	}
	v, f := s.lookupVolume(q.get("VolumeId"))
	if f != nil {
		return nil, f
	}
	found, f := s.lookup([]string{q.get("InstanceId")})
	if f != nil {
		return nil, f
	}
	in := found[0]
	if in.State != Running && in.State != Stopped {
		return nil, &Fault{Code: "IncorrectState", Message: fmt.Sprintf("Instance '%s' is not 'running'.", in.ID)}
	}
	if v.attachment != nil {
		return nil, &Fault{Code: "VolumeInUse", Message: fmt.Sprintf("%s is already attached to an instance", v.id)}
	}
	if v.zone != DefaultZone {
		return nil, &Fault{Code: "InvalidVolume.ZoneMismatch", Message: fmt.Sprintf("The volume '%s' is not in the same availability zone as instance '%s'", v.id, in.ID)}
	}
	device := q.get("Device")
	for _, other := range s.linked(in).blockDevices {
		if other.attachment != nil && other.attachment.device == device {
			return nil, invalidValue("Invalid value '%s' for unixDevice. Attachment point %s is already in use", device, device)
		}
	}
	s.attachVolume(v, in, device, false)
	x := v.attachment.xml(v.id)
	x.Status = "attaching" // EC2's answer; attached by the next call
	return &attachVolumeResponse{RequestID: reqID, xmlVolumeAttachment: x}, nil
}

func (s *Server) describeVolumes(q query, reqID string) (any, *Fault) {
	s.res.init()
	hits, next, f := listing[*volume]{
		idParam: "VolumeId", idSet: "volumeSet", all: s.res.volumes, lookup: s.lookupVolume,
		filters: []string{"volume-id", "status", "attachment.instance-id", "attachment.status", "attachment.delete-on-termination", "availability-zone", "size"},
		tags:    func(v *volume) map[string]string { return v.tags },
		field: func(v *volume, name string) []string {
			switch name {
			case "volume-id":
				return []string{v.id}
			case "status":
				return []string{v.state()}
			case "availability-zone":
				return []string{v.zone}
			case "size":
				return []string{strconv.Itoa(v.size)}
			}
			if a := v.attachment; a != nil {
				switch name {
				case "attachment.instance-id":
					return []string{a.instanceID}
				case "attachment.status":
					return []string{a.state}
				case "attachment.delete-on-termination":
					return []string{strconv.FormatBool(a.dot)}
				}
			}
			return nil
		},
		lo: 5, hi: 500,
	}.run(q)
	if f != nil {
		return nil, f
	}
	out := &describeVolumesResponse{RequestID: reqID, NextToken: next}
	for _, v := range hits {
		out.Volumes = append(out.Volumes, v.xml())
	}
	return out, nil
}

func (s *Server) deleteVolumeAction(q query, reqID string) (any, *Fault) {
	id := q.get("VolumeId")
	if id == "" {
		return nil, missing("VolumeId")
	}
	s.res.init()
	v, f := s.lookupVolume(id)
	if f != nil {
		return nil, f
	}
	if f := s.authorizeTags("DeleteVolume", reqID, v.tags); f != nil {
		return nil, f
	}
	if a := v.attachment; a != nil {
		return nil, &Fault{Code: "VolumeInUse", Message: fmt.Sprintf("Volume %s is currently attached to %s", v.id, a.instanceID)}
	}
	delete(s.res.volumes, v.id)
	return &returnResponse{RequestID: reqID, Return: true}, nil
}
