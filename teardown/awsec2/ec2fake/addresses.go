package ec2fake

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// Address is one fake Elastic IP (a VPC allocation), as [Server.AddAddress]
// takes it and [Server.Addresses] reports it.
type Address struct {
	AllocationID string
	PublicIP     string
	Tags         map[string]string
	// AssociationID is set while the address is associated with a network
	// interface: NetworkInterfaceID, and InstanceID when that interface is
	// attached to an instance.
	AssociationID      string
	NetworkInterfaceID string
	InstanceID         string
}

type address struct {
	id            string // allocation id
	publicIP      string
	order         uint64
	tags          map[string]string
	associationID string
	eni           *netInterface
}

func (a *address) instanceID() string {
	if a.eni != nil && a.eni.attachment != nil {
		return a.eni.attachment.instanceID
	}
	return ""
}

func (a *address) disassociate() {
	if a.eni != nil {
		a.eni.address = nil
	}
	a.eni, a.associationID = nil, ""
}

func (a *address) snapshot() Address {
	out := Address{AllocationID: a.id, PublicIP: a.publicIP, Tags: maps.Clone(a.tags), AssociationID: a.associationID, InstanceID: a.instanceID()}
	if a.eni != nil {
		out.NetworkInterfaceID = a.eni.id
	}
	return out
}

// allocate makes an unassociated address. It runs with s.mu held.
func (s *Server) allocate(tags map[string]string) *address {
	s.res.init()
	n := s.res.seq["ip:public"] + 1
	s.res.seq["ip:public"] = n
	a := &address{
		id: s.newID("eipalloc-"), order: s.nextCreated(), tags: maps.Clone(tags),
		publicIP: fmt.Sprintf("54.%d.%d.%d", 64+(n>>16)&63, (n>>8)&255, n&255),
	}
	if a.tags == nil {
		a.tags = map[string]string{}
	}
	s.res.addresses[a.id] = a
	return a
}

// associate associates a with eni, taking it off any interface it was on
// and taking any other address off eni. It runs with s.mu held.
func (s *Server) associate(a *address, eni *netInterface) string {
	a.disassociate()
	if eni.address != nil {
		eni.address.disassociate()
	}
	a.eni, eni.address = eni, a
	a.associationID = s.newID("eipassoc-")
	return a.associationID
}

// AddAddress allocates an Elastic IP directly, as if AllocateAddress (and,
// when a.InstanceID or a.NetworkInterfaceID is set, AssociateAddress) had
// succeeded, and returns its allocation id. An instance's address goes on
// its primary interface. AllocationID, PublicIP and AssociationID are
// ignored. It panics when the instance or interface does not exist.
func (s *Server) AddAddress(a Address) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ad := s.allocate(a.Tags)
	var eni *netInterface
	switch {
	case a.NetworkInterfaceID != "":
		eni = s.res.interfaces[a.NetworkInterfaceID]
	case a.InstanceID != "":
		if in, ok := s.instances[a.InstanceID]; ok && in.links != nil && len(in.links.nics) > 0 {
			eni = in.links.nics[0]
		}
	default:
		return ad.id
	}
	if eni == nil {
		panic(fmt.Sprintf("ec2fake: AddAddress: no interface for instance %q / interface %q", a.InstanceID, a.NetworkInterfaceID))
	}
	s.associate(ad, eni)
	return ad.id
}

// Addresses returns a snapshot of every Elastic IP allocated, in
// allocation order.
func (s *Server) Addresses() []Address {
	return snapshotAll(s, func(r *resources) map[string]*address { return r.addresses }, (*address).snapshot)
}

type xmlAddress struct {
	PublicIP                string   `xml:"publicIp"`
	AllocationID            string   `xml:"allocationId"`
	Domain                  string   `xml:"domain"`
	AssociationID           string   `xml:"associationId,omitempty"`
	InstanceID              string   `xml:"instanceId,omitempty"`
	NetworkInterfaceID      string   `xml:"networkInterfaceId,omitempty"`
	NetworkInterfaceOwnerID string   `xml:"networkInterfaceOwnerId,omitempty"`
	PrivateIPAddress        string   `xml:"privateIpAddress,omitempty"`
	PublicIPv4Pool          string   `xml:"publicIpv4Pool"`
	NetworkBorderGroup      string   `xml:"networkBorderGroup"`
	Tags                    []xmlTag `xml:"tagSet>item"`
}

func (a *address) xml() xmlAddress {
	x := xmlAddress{
		PublicIP: a.publicIP, AllocationID: a.id, Domain: "vpc", AssociationID: a.associationID, InstanceID: a.instanceID(),
		PublicIPv4Pool: "amazon", NetworkBorderGroup: "us-east-1", Tags: xmlTags(a.tags),
	}
	if a.eni != nil {
		x.NetworkInterfaceID, x.NetworkInterfaceOwnerID, x.PrivateIPAddress = a.eni.id, ownerID, a.eni.privateIP
	}
	return x
}

type allocateResponse struct {
	RequestID          string `xml:"requestId"`
	PublicIP           string `xml:"publicIp"`
	AllocationID       string `xml:"allocationId"`
	Domain             string `xml:"domain"`
	PublicIPv4Pool     string `xml:"publicIpv4Pool"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
}

type associateResponse struct {
	RequestID     string `xml:"requestId"`
	Return        bool   `xml:"return"`
	AssociationID string `xml:"associationId"`
}

type describeAddressesResponse struct {
	RequestID string       `xml:"requestId"`
	Addresses []xmlAddress `xml:"addressesSet>item"`
}

// allocationNotFound is EC2's answer for an unknown allocation id.
func allocationNotFound(id string) *Fault {
	return &Fault{Code: "InvalidAllocationID.NotFound", Message: fmt.Sprintf("The allocation ID '%s' does not exist", id)}
}

// lookupAddress resolves an allocation id or, without one, a public IP.
// It runs with s.mu held.
func (s *Server) lookupAddress(allocationID, publicIP string) (*address, *Fault) {
	s.res.init()
	if allocationID != "" {
		if !validResourceID(allocationID, "eipalloc-") {
			return nil, malformed("InvalidAllocationID.Malformed", allocationID, "eipalloc-")
		}
		a, ok := s.res.addresses[allocationID]
		if !ok {
			return nil, allocationNotFound(allocationID)
		}
		return a, nil
	}
	for _, a := range s.res.addresses {
		if a.publicIP == publicIP {
			return a, nil
		}
	}
	return nil, &Fault{Code: "InvalidAddress.NotFound", Message: fmt.Sprintf("Address '%s' not found.", publicIP)}
}

func (s *Server) allocateAddress(q query, reqID string) (any, *Fault) {
	if d := q.get("Domain"); d != "" && d != "vpc" {
		return nil, invalidValue("Invalid value '%s' for domain: only vpc addresses exist", d)
	}
	if q.get("Address") != "" {
		return nil, &Fault{Code: "InvalidAddress.NotFound", Message: fmt.Sprintf("Address '%s' not found.", q.get("Address"))}
	}
	if f := checkSpecTypes(q, "elastic-ip"); f != nil {
		return nil, f
	}
	a := s.allocate(specTags(q, "TagSpecification", "elastic-ip"))
	return &allocateResponse{RequestID: reqID, PublicIP: a.publicIP, AllocationID: a.id, Domain: "vpc", PublicIPv4Pool: "amazon", NetworkBorderGroup: "us-east-1"}, nil
}

func (s *Server) associateAddress(q query, reqID string) (any, *Fault) {
	if q.get("AllocationId") == "" && q.get("PublicIp") == "" {
		return nil, missing("AllocationId")
	}
	a, f := s.lookupAddress(q.get("AllocationId"), q.get("PublicIp"))
	if f != nil {
		return nil, f
	}
	var eni *netInterface
	switch {
	case q.get("NetworkInterfaceId") != "":
		if eni, f = s.lookupInterface(q.get("NetworkInterfaceId")); f != nil {
			return nil, f
		}
	case q.get("InstanceId") != "":
		found, f := s.lookup([]string{q.get("InstanceId")})
		if f != nil {
			return nil, f
		}
		in := found[0]
		if in.State != Running && in.State != Stopped || in.links == nil || len(in.links.nics) == 0 {
			return nil, &Fault{Code: "IncorrectInstanceState", Message: fmt.Sprintf("The instance '%s' is not in a valid state for this operation.", in.ID)}
		}
		eni = in.links.nics[0]
	default:
		return nil, &Fault{Code: "MissingParameter", Message: "Either instance ID or network interface id must be specified"}
	}
	// In a VPC, reassociation is automatic unless the caller forbids it.
	if a.eni != nil && a.eni != eni && q.get("AllowReassociation") == "false" {
		return nil, &Fault{Code: "Resource.AlreadyAssociated", Message: fmt.Sprintf("resource %s is already associated with associate-id %s", a.id, a.associationID)}
	}
	assoc := a.associationID
	if a.eni != eni {
		assoc = s.associate(a, eni)
	}
	return &associateResponse{RequestID: reqID, Return: true, AssociationID: assoc}, nil
}

func (s *Server) describeAddresses(q query, reqID string) (any, *Fault) {
	s.res.init()
	var pool []*address
	allocs, ips := unique(q.list("AllocationId")), unique(q.list("PublicIp"))
	if len(allocs)+len(ips) > 0 {
		seen := map[*address]bool{}
		for _, id := range allocs {
			a, f := s.lookupAddress(id, "")
			if f != nil {
				return nil, f
			}
			if !seen[a] {
				seen[a] = true
				pool = append(pool, a)
			}
		}
		for _, ip := range ips {
			a, f := s.lookupAddress("", ip)
			if f != nil {
				return nil, f
			}
			if !seen[a] {
				seen[a] = true
				pool = append(pool, a)
			}
		}
	} else {
		pool = slices.Collect(maps.Values(s.res.addresses))
	}
	slices.SortFunc(pool, func(a, b *address) int { return cmp.Compare(a.order, b.order) })
	hits, f := filterAll(pool, q.filters(),
		[]string{"allocation-id", "association-id", "domain", "instance-id", "network-interface-id", "public-ip", "private-ip-address"},
		func(a *address) map[string]string { return a.tags },
		func(a *address, name string) []string {
			switch name {
			case "allocation-id":
				return []string{a.id}
			case "domain":
				return []string{"vpc"}
			case "public-ip":
				return []string{a.publicIP}
			case "association-id":
				if a.associationID != "" {
					return []string{a.associationID}
				}
			case "instance-id":
				if id := a.instanceID(); id != "" {
					return []string{id}
				}
			case "network-interface-id":
				if a.eni != nil {
					return []string{a.eni.id}
				}
			case "private-ip-address":
				if a.eni != nil {
					return []string{a.eni.privateIP}
				}
			}
			return nil
		})
	if f != nil {
		return nil, f
	}
	out := &describeAddressesResponse{RequestID: reqID}
	for _, a := range hits {
		out.Addresses = append(out.Addresses, a.xml())
	}
	return out, nil
}

func (s *Server) releaseAddress(q query, reqID string) (any, *Fault) {
	if q.get("AllocationId") == "" && q.get("PublicIp") == "" {
		return nil, missing("AllocationId")
	}
	a, f := s.lookupAddress(q.get("AllocationId"), q.get("PublicIp"))
	if f != nil {
		return nil, f
	}
	if f := s.authorizeTags("ReleaseAddress", reqID, a.tags); f != nil {
		return nil, f
	}
	if a.associationID != "" {
		return nil, &Fault{Code: "InvalidIPAddress.InUse", Message: fmt.Sprintf("Address %s is in use.", a.id)}
	}
	delete(s.res.addresses, a.id)
	return &returnResponse{RequestID: reqID, Return: true}, nil
}
