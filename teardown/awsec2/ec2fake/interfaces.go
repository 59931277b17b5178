package ec2fake

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Network interface states, as EC2 names them.
const (
	InterfaceAvailable = "available"
	InterfaceInUse     = "in-use"
)

// NetworkInterface is one fake network interface, as
// [Server.AddNetworkInterface] takes it and [Server.NetworkInterfaces]
// reports it.
type NetworkInterface struct {
	ID          string
	State       string // available or in-use
	SubnetID    string
	Description string
	PrivateIP   string
	Tags        map[string]string
	// InstanceID is the instance it is attached to, or "", at DeviceIndex
	// (0 is the primary interface EC2 makes with every instance);
	// DeleteOnTermination describes that attachment.
	InstanceID          string
	DeviceIndex         int
	DeleteOnTermination bool
	// AllocationID is the Elastic IP associated with it, or "".
	AllocationID string
}

type netInterface struct {
	id          string
	subnet      string
	description string
	privateIP   string
	order       uint64
	tags        map[string]string
	attachment  *eniAttachment
	address     *address // the Elastic IP associated with it, if any
}

type eniAttachment struct {
	id         string
	instanceID string
	index      int
	dot        bool
	at         time.Time
}

func (n *netInterface) state() string {
	if n.attachment != nil {
		return InterfaceInUse
	}
	return InterfaceAvailable
}

func (n *netInterface) snapshot() NetworkInterface {
	out := NetworkInterface{ID: n.id, State: n.state(), SubnetID: n.subnet, Description: n.description, PrivateIP: n.privateIP, Tags: maps.Clone(n.tags)}
	if a := n.attachment; a != nil {
		out.InstanceID, out.DeviceIndex, out.DeleteOnTermination = a.instanceID, a.index, a.dot
	}
	if n.address != nil {
		out.AllocationID = n.address.id
	}
	return out
}

// createInterface makes an available interface in subnet. It runs with
// s.mu held.
func (s *Server) createInterface(subnet, description string, tags map[string]string) *netInterface {
	s.res.init()
	n := s.res.seq["ip:private"] + 1
	s.res.seq["ip:private"] = n
	eni := &netInterface{
		id: s.newID("eni-"), subnet: subnet, description: description, order: s.nextCreated(),
		privateIP: fmt.Sprintf("10.0.%d.%d", (n>>8)&255, n&255), tags: maps.Clone(tags),
	}
	if eni.tags == nil {
		eni.tags = map[string]string{}
	}
	s.res.interfaces[eni.id] = eni
	return eni
}

// attachInterface attaches eni to in at device index idx. It runs with
// s.mu held.
func (s *Server) attachInterface(eni *netInterface, in *instance, idx int, dot bool) {
	eni.attachment = &eniAttachment{id: s.newID("eni-attach-"), instanceID: in.ID, index: idx, dot: dot, at: s.now()}
	l := s.linked(in)
	l.nics = append(l.nics, eni)
	slices.SortStableFunc(l.nics, func(a, b *netInterface) int { return cmp.Compare(a.attachment.index, b.attachment.index) })
}

// detachInterface frees eni from its terminated instance: deleted with it
// when DeleteOnTermination is set (its Elastic IP disassociated), else
// available, keeping its Elastic IP. It runs with s.mu held.
func (s *Server) detachInterface(eni *netInterface) {
	if eni.attachment == nil {
		return
	}
	dot := eni.attachment.dot
	eni.attachment = nil
	if dot {
		s.deleteInterface(eni)
	}
}

// deleteInterface removes eni; the Elastic IP associated with it, if any,
// is disassociated, as EC2 does. It runs with s.mu held.
func (s *Server) deleteInterface(eni *netInterface) {
	if eni.address != nil {
		eni.address.disassociate()
	}
	delete(s.res.interfaces, eni.id)
}

// AddNetworkInterface adds an interface directly, as if
// CreateNetworkInterface (and, when n.InstanceID is set,
// AttachNetworkInterface at n.DeviceIndex, 1 by default) had succeeded,
// and returns its id. Zero fields take defaults: a fresh id,
// DefaultSubnet. State, PrivateIP and AllocationID are ignored. It panics
// when n.InstanceID names no instance.
func (s *Server) AddNetworkInterface(n NetworkInterface) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.SubnetID == "" {
		n.SubnetID = DefaultSubnet
	}
	eni := s.createInterface(n.SubnetID, n.Description, n.Tags)
	if n.ID != "" {
		delete(s.res.interfaces, eni.id)
		eni.id = n.ID
		s.res.interfaces[eni.id] = eni
	}
	if n.InstanceID != "" {
		in, ok := s.instances[n.InstanceID]
		if !ok {
			panic(fmt.Sprintf("ec2fake: AddNetworkInterface: no instance %q", n.InstanceID))
		}
		if n.DeviceIndex == 0 {
			n.DeviceIndex = 1
		}
		s.attachInterface(eni, in, n.DeviceIndex, n.DeleteOnTermination)
	}
	return eni.id
}

// NetworkInterfaces returns a snapshot of every interface that exists,
// instances' primary ones included, in creation order.
func (s *Server) NetworkInterfaces() []NetworkInterface {
	return snapshotAll(s, func(r *resources) map[string]*netInterface { return r.interfaces }, (*netInterface).snapshot)
}

type xmlENIAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId,omitempty"`
	InstanceOwnerID     string `xml:"instanceOwnerId,omitempty"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xmlENIAssociation struct {
	PublicIP      string `xml:"publicIp"`
	PublicDNSName string `xml:"publicDnsName"`
	IPOwnerID     string `xml:"ipOwnerId"`
	AllocationID  string `xml:"allocationId,omitempty"`
	AssociationID string `xml:"associationId,omitempty"`
}

type xmlNetworkInterface struct {
	NetworkInterfaceID string             `xml:"networkInterfaceId"`
	SubnetID           string             `xml:"subnetId"`
	VpcID              string             `xml:"vpcId"`
	AvailabilityZone   string             `xml:"availabilityZone,omitempty"`
	Description        string             `xml:"description"`
	OwnerID            string             `xml:"ownerId"`
	RequesterManaged   bool               `xml:"requesterManaged"`
	Status             string             `xml:"status"`
	MacAddress         string             `xml:"macAddress"`
	PrivateIPAddress   string             `xml:"privateIpAddress"`
	SourceDestCheck    bool               `xml:"sourceDestCheck"`
	InterfaceType      string             `xml:"interfaceType"`
	Attachment         *xmlENIAttachment  `xml:"attachment,omitempty"`
	Association        *xmlENIAssociation `xml:"association,omitempty"`
	Tags               []xmlTag           `xml:"tagSet>item"`
}

func (n *netInterface) xml(forInstance bool) xmlNetworkInterface {
	x := xmlNetworkInterface{
		NetworkInterfaceID: n.id, SubnetID: n.subnet, VpcID: defaultVPC, Description: n.description, OwnerID: ownerID,
		Status: n.state(), MacAddress: mac(n.order), PrivateIPAddress: n.privateIP, SourceDestCheck: true, InterfaceType: "interface",
	}
	if !forInstance {
		x.AvailabilityZone = DefaultZone
		x.Tags = xmlTags(n.tags)
	}
	if a := n.attachment; a != nil {
		x.Attachment = &xmlENIAttachment{
			AttachmentID: a.id, DeviceIndex: a.index, Status: "attached", AttachTime: timestamp(a.at), DeleteOnTermination: a.dot,
		}
		if !forInstance {
			x.Attachment.InstanceID, x.Attachment.InstanceOwnerID = a.instanceID, ownerID
		}
	}
	if ad := n.address; ad != nil {
		x.Association = &xmlENIAssociation{PublicIP: ad.publicIP, PublicDNSName: "", IPOwnerID: ownerID}
		if !forInstance {
			x.Association.AllocationID, x.Association.AssociationID = ad.id, ad.associationID
		}
	}
	return x
}

func mac(n uint64) string {
	return fmt.Sprintf("0e:c2:fa:%02x:%02x:%02x", (n>>16)&255, (n>>8)&255, n&255)
}

type createInterfaceResponse struct {
	RequestID        string              `xml:"requestId"`
	NetworkInterface xmlNetworkInterface `xml:"networkInterface"`
}

type describeInterfacesResponse struct {
	RequestID  string                `xml:"requestId"`
	Interfaces []xmlNetworkInterface `xml:"networkInterfaceSet>item"`
	NextToken  string                `xml:"nextToken,omitempty"`
}

type attachInterfaceResponse struct {
	RequestID    string `xml:"requestId"`
	AttachmentID string `xml:"attachmentId"`
	CardIndex    int    `xml:"networkCardIndex"`
}

// lookupInterface resolves one interface id. It runs with s.mu held.
func (s *Server) lookupInterface(id string) (*netInterface, *Fault) {
	if !validResourceID(id, "eni-") {
		return nil, malformed("InvalidNetworkInterfaceID.Malformed", id, "eni-")
	}
	s.res.init()
	eni, ok := s.res.interfaces[id]
	if !ok {
		return nil, &Fault{Code: "InvalidNetworkInterfaceID.NotFound", Message: fmt.Sprintf("The networkInterface ID '%s' does not exist", id)}
	}
	return eni, nil
}

func (s *Server) createNetworkInterface(q query, reqID string) (any, *Fault) {
	subnet := q.get("SubnetId")
	if subnet == "" {
		return nil, missing("SubnetId")
	}
	if subnet != DefaultSubnet {
		return nil, &Fault{Code: "InvalidSubnetID.NotFound", Message: fmt.Sprintf("The subnet ID '%s' does not exist", subnet)}
	}
	if f := checkSpecTypes(q, "network-interface"); f != nil {
		return nil, f
	}
	eni := s.createInterface(subnet, q.get("Description"), specTags(q, "TagSpecification", "network-interface"))
	x := eni.xml(false)
	x.Status = "pending" // EC2's answer; available by the next call
	return &createInterfaceResponse{RequestID: reqID, NetworkInterface: x}, nil
}

func (s *Server) attachNetworkInterface(q query, reqID string) (any, *Fault) {
	for _, p := range []string{"DeviceIndex", "InstanceId", "NetworkInterfaceId"} {
		if q.get(p) == "" {
			return nil, missing(p)
		}
	}
	idx, err := strconv.Atoi(q.get("DeviceIndex"))
	if err != nil || idx < 0 {
		return nil, invalidValue("Invalid value '%s' for deviceIndex", q.get("DeviceIndex"))
	}
	eni, f := s.lookupInterface(q.get("NetworkInterfaceId"))
	if f != nil {
		return nil, f
	}
	found, f := s.lookup([]string{q.get("InstanceId")})
	if f != nil {
		return nil, f
	}
	in := found[0]
	if in.State != Running && in.State != Stopped {
		return nil, &Fault{Code: "IncorrectInstanceState", Message: fmt.Sprintf("The instance '%s' is not in a valid state for this operation.", in.ID)}
	}
	if eni.attachment != nil {
		return nil, &Fault{Code: "InvalidNetworkInterface.InUse", Message: fmt.Sprintf("Interface: [%s] in use.", eni.id)}
	}
	for _, other := range s.linked(in).nics {
		if other.attachment.index == idx {
			return nil, invalidValue("Instance '%s' already has an interface attached at device index '%d'.", in.ID, idx)
		}
	}
	s.attachInterface(eni, in, idx, false)
	return &attachInterfaceResponse{RequestID: reqID, AttachmentID: eni.attachment.id}, nil
}

func (s *Server) describeNetworkInterfaces(q query, reqID string) (any, *Fault) {
	s.res.init()
	hits, next, f := listing[*netInterface]{
		idParam: "NetworkInterfaceId", idSet: "networkInterfaceIdSet", all: s.res.interfaces, lookup: s.lookupInterface,
		filters: []string{"network-interface-id", "status", "subnet-id", "vpc-id", "attachment.instance-id", "attachment.delete-on-termination", "description"},
		tags:    func(n *netInterface) map[string]string { return n.tags },
		field: func(n *netInterface, name string) []string {
			switch name {
			case "network-interface-id":
				return []string{n.id}
			case "status":
				return []string{n.state()}
			case "subnet-id":
				return []string{n.subnet}
			case "vpc-id":
				return []string{defaultVPC}
			case "description":
				return []string{n.description}
			}
			if a := n.attachment; a != nil {
				switch name {
				case "attachment.instance-id":
					return []string{a.instanceID}
				case "attachment.delete-on-termination":
					return []string{strconv.FormatBool(a.dot)}
				}
			}
			return nil
		},
		lo: 5, hi: 1000,
	}.run(q)
	if f != nil {
		return nil, f
	}
	out := &describeInterfacesResponse{RequestID: reqID, NextToken: next}
	for _, n := range hits {
		out.Interfaces = append(out.Interfaces, n.xml(false))
	}
	return out, nil
}

func (s *Server) deleteNetworkInterface(q query, reqID string) (any, *Fault) {
	id := q.get("NetworkInterfaceId")
	if id == "" {
		return nil, missing("NetworkInterfaceId")
	}
	eni, f := s.lookupInterface(id)
	if f != nil {
		return nil, f
	}
	if f := s.authorizeTags("DeleteNetworkInterface", reqID, eni.tags); f != nil {
		return nil, f
	}
	if eni.attachment != nil {
		// EC2's own answer: not a code of its own, but InvalidParameterValue.
		return nil, invalidValue("Network interface '%s' is currently in use.", eni.id)
	}
	s.deleteInterface(eni)
	return &returnResponse{RequestID: reqID, Return: true}, nil
}
