package ec2fake

import (
	"fmt"
	"maps"
	"strconv"
	"time"
)

// Spot request types and states, as EC2 names them.
const (
	SpotOneTime    = "one-time"
	SpotPersistent = "persistent"

	SpotOpen      = "open"
	SpotActive    = "active"
	SpotClosed    = "closed"
	SpotCancelled = "cancelled"
)

// SpotRequest is one fake spot instance request, as [Server.RequestSpot]
// takes it and [Server.SpotRequests] reports it.
type SpotRequest struct {
	ID         string
	Type       string // one-time (the default) or persistent
	State      string // open, active, closed or cancelled
	StatusCode string // e.g. fulfilled, instance-terminated-by-user
	InstanceID string // the instance it launched last, or ""
	CreateTime time.Time
	Tags       map[string]string
	// InstanceTags are the tags every instance it launches is given.
	InstanceTags map[string]string
}

type spotRequest struct {
	id           string
	typ          string
	state        string
	status       string
	updated      time.Time
	instanceID   string
	imageID      string
	price        string
	created      time.Time
	order        uint64
	tags         map[string]string
	instanceTags map[string]string
}

func (r *spotRequest) snapshot() SpotRequest {
	return SpotRequest{
		ID: r.id, Type: r.typ, State: r.state, StatusCode: r.status, InstanceID: r.instanceID, CreateTime: r.created,
		Tags: maps.Clone(r.tags), InstanceTags: maps.Clone(r.instanceTags),
	}
}

func (r *spotRequest) set(state, status string, now time.Time) {
	r.state, r.status, r.updated = state, status, now
}

// newSpotRequest records a request and fulfils it at once: the fake has
// capacity for every request. It runs with s.mu held.
func (s *Server) newSpotRequest(typ, image, price string, tags, instanceTags map[string]string) *spotRequest {
	s.res.init()
	r := &spotRequest{
		id: s.newID("sir-"), typ: typ, imageID: image, price: price, created: s.now(), order: s.nextCreated(),
		tags: maps.Clone(tags), instanceTags: maps.Clone(instanceTags),
	}
	if r.tags == nil {
		r.tags = map[string]string{}
	}
	s.res.spots[r.id] = r
	s.fulfil(r)
	return r
}

// fulfil launches r's instance. It runs with s.mu held.
func (s *Server) fulfil(r *spotRequest) *instance {
	now := s.now()
	in := &instance{
		Instance:    Instance{ID: s.nextID("i-"), State: Running, LaunchTime: now, Tags: r.instanceTags},
		reservation: s.nextID("r-"),
		imageID:     r.imageID,
		visibleAt:   now.Add(s.propagation),
	}
	s.add(in)
	s.linked(in).spotRequest = r.id
	root := s.createVolume(8, DefaultZone, nil)
	s.attachVolume(root, in, rootDevice, true)
	r.instanceID = in.ID
	r.set(SpotActive, "fulfilled", now)
	return in
}

// spotInstanceEnded is what EC2 does to r when its instance is
// terminated: a one-time request closes; a persistent one opens again and
// launches a replacement once the old instance is gone, unless it is
// cancelled first. It runs with s.mu held.
func (s *Server) spotInstanceEnded(r *spotRequest) {
	now := s.now()
	switch {
	case r.state == SpotCancelled:
		r.status, r.updated = "instance-terminated-by-user", now
	case r.typ == SpotPersistent:
		r.set(SpotOpen, "instance-terminated-by-user", now)
		id := r.id
		s.after(s.res.detachDelay, func(s *Server) {
			if r := s.res.spots[id]; r != nil && r.state == SpotOpen {
				s.fulfil(r)
			}
		})
	default:
		r.set(SpotClosed, "instance-terminated-by-user", now)
	}
}

// RequestSpot records a spot request directly, as if RequestSpotInstances
// had succeeded for one instance, launches its instance and returns both
// ids. Type defaults to one-time; the other fields but Tags and
// InstanceTags are ignored.
func (s *Server) RequestSpot(r SpotRequest) (requestID, instanceID string) {
	if r.Type == "" {
		r.Type = SpotOneTime
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.newSpotRequest(r.Type, "ami-0ec2fa4e00000000", "0.010000", r.Tags, r.InstanceTags)
	return sr.id, sr.instanceID
}

// SpotRequests returns a snapshot of every spot request, cancelled and
// closed ones included, in creation order.
func (s *Server) SpotRequests() []SpotRequest {
	return snapshotAll(s, func(r *resources) map[string]*spotRequest { return r.spots }, (*spotRequest).snapshot)
}

type xmlSpotStatus struct {
	Code       string `xml:"code"`
	UpdateTime string `xml:"updateTime"`
	Message    string `xml:"message"`
}

type xmlLaunchSpec struct {
	ImageID      string `xml:"imageId"`
	InstanceType string `xml:"instanceType"`
	Placement    struct {
		AvailabilityZone string `xml:"availabilityZone"`
	} `xml:"placement"`
}

type xmlSpotRequest struct {
	SpotInstanceRequestID    string        `xml:"spotInstanceRequestId"`
	SpotPrice                string        `xml:"spotPrice"`
	Type                     string        `xml:"type"`
	State                    string        `xml:"state"`
	Status                   xmlSpotStatus `xml:"status"`
	LaunchSpecification      xmlLaunchSpec `xml:"launchSpecification"`
	InstanceID               string        `xml:"instanceId,omitempty"`
	CreateTime               string        `xml:"createTime"`
	ProductDescription       string        `xml:"productDescription"`
	LaunchedAvailabilityZone string        `xml:"launchedAvailabilityZone,omitempty"`
	InterruptionBehavior     string        `xml:"instanceInterruptionBehavior"`
	Tags                     []xmlTag      `xml:"tagSet>item"`
}

func (r *spotRequest) xml() xmlSpotRequest {
	x := xmlSpotRequest{
		SpotInstanceRequestID: r.id, SpotPrice: r.price, Type: r.typ, State: r.state,
		Status:     xmlSpotStatus{Code: r.status, UpdateTime: timestamp(r.updated), Message: spotStatusMessage(r.status)},
		InstanceID: r.instanceID, CreateTime: timestamp(r.created), ProductDescription: "Linux/UNIX",
		InterruptionBehavior: "terminate", Tags: xmlTags(r.tags),
	}
	x.LaunchSpecification.ImageID, x.LaunchSpecification.InstanceType = r.imageID, "t3.micro"
	x.LaunchSpecification.Placement.AvailabilityZone = DefaultZone
	if r.instanceID != "" {
		x.LaunchedAvailabilityZone = DefaultZone
	}
	return x
}

func spotStatusMessage(code string) string {
	switch code {
	case "fulfilled":
		return "Your spot request is fulfilled."
	case "instance-terminated-by-user":
		return "Spot Instance terminated due to user-initiated termination."
	case "request-canceled-and-instance-running":
		return "Spot request canceled but instance running."
	case "canceled-before-fulfillment":
		return "Your Spot request was canceled before it was fulfilled."
	case "pending-evaluation":
		return "Your Spot request has been submitted for review, and is pending evaluation."
	}
	return code
}

type spotRequestsResponse struct {
	RequestID string           `xml:"requestId"`
	Requests  []xmlSpotRequest `xml:"spotInstanceRequestSet>item"`
	NextToken string           `xml:"nextToken,omitempty"`
}

type xmlCancelled struct {
	SpotInstanceRequestID string `xml:"spotInstanceRequestId"`
	State                 string `xml:"state"`
}

type cancelSpotResponse struct {
	RequestID string         `xml:"requestId"`
	Cancelled []xmlCancelled `xml:"spotInstanceRequestSet>item"`
}

// maxSpotCount is the most instances one RequestSpotInstances call asks for.
const maxSpotCount = 100

func (s *Server) requestSpotInstances(q query, reqID string) (any, *Fault) {
	image := q.get("LaunchSpecification.ImageId")
	if image == "" {
		return nil, missing("LaunchSpecification.ImageId")
	}
	count := 1
	if v := q.get("InstanceCount"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSpotCount {
			return nil, invalidValue("Invalid value '%s' for instanceCount", v)
		}
		count = n
	}
	typ := q.get("Type")
	switch typ {
	case "":
		typ = SpotOneTime
	case SpotOneTime, SpotPersistent:
	default:
		return nil, invalidValue("Invalid value '%s' for type", typ)
	}
	price := "0.010000"
	if v := q.get("SpotPrice"); v != "" {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p <= 0 {
			return nil, invalidValue("Invalid value '%s' for spotPrice", v)
		}
		price = fmt.Sprintf("%.6f", p)
	}
	// EC2 tags only the request here. The fake, as moto does, also gives
	// "instance" tags to the instances the request launches.
	if f := checkSpecTypes(q, "spot-instances-request", "instance"); f != nil {
		return nil, f
	}
	tags := specTags(q, "TagSpecification", "spot-instances-request")
	instanceTags := specTags(q, "TagSpecification", "instance")
	out := &spotRequestsResponse{RequestID: reqID}
	for range count {
		r := s.newSpotRequest(typ, image, price, tags, instanceTags)
		x := r.xml()
		// EC2's answer; the request is fulfilled by the next call.
		x.State, x.InstanceID, x.LaunchedAvailabilityZone = SpotOpen, "", ""
		x.Status = xmlSpotStatus{Code: "pending-evaluation", UpdateTime: x.CreateTime, Message: spotStatusMessage("pending-evaluation")}
		out.Requests = append(out.Requests, x)
	}
	return out, nil
}

// lookupSpot resolves one spot request id. It runs with s.mu held.
func (s *Server) lookupSpot(id string) (*spotRequest, *Fault) {
	if !validResourceID(id, "sir-") {
		return nil, malformed("InvalidSpotInstanceRequestID.Malformed", id, "sir-")
	}
	r, ok := s.res.spots[id]
	if !ok {
		return nil, &Fault{Code: "InvalidSpotInstanceRequestID.NotFound", Message: fmt.Sprintf("The spot instance request ID '%s' does not exist", id)}
	}
	return r, nil
}

func (s *Server) describeSpotInstanceRequests(q query, reqID string) (any, *Fault) {
	s.res.init()
	hits, next, f := listing[*spotRequest]{
		idParam: "SpotInstanceRequestId", all: s.res.spots, lookup: s.lookupSpot,
		filters: []string{"spot-instance-request-id", "state", "type", "instance-id", "status-code"},
		tags:    func(r *spotRequest) map[string]string { return r.tags },
		field: func(r *spotRequest, name string) []string {
			switch name {
			case "spot-instance-request-id":
				return []string{r.id}
			case "state":
				return []string{r.state}
			case "type":
				return []string{r.typ}
			case "status-code":
				return []string{r.status}
			case "instance-id":
				if r.instanceID != "" {
					return []string{r.instanceID}
				}
			}
			return nil
		},
		lo: 5, hi: 1000,
	}.run(q)
	if f != nil {
		return nil, f
	}
	out := &spotRequestsResponse{RequestID: reqID, NextToken: next}
	for _, r := range hits {
		out.Requests = append(out.Requests, r.xml())
	}
	return out, nil
}

func (s *Server) cancelSpotInstanceRequests(q query, reqID string) (any, *Fault) {
	ids := unique(q.list("SpotInstanceRequestId"))
	if len(ids) == 0 {
		return nil, missing("SpotInstanceRequestId")
	}
	s.res.init()
	var found []*spotRequest
	for _, id := range ids {
		r, f := s.lookupSpot(id)
		if f != nil {
			return nil, f
		}
		found = append(found, r)
	}
	for _, r := range found {
		if f := s.authorizeTags("CancelSpotInstanceRequests", reqID, r.tags); f != nil {
			return nil, f
		}
	}
	now := s.now()
	out := &cancelSpotResponse{RequestID: reqID}
	for _, r := range found {
		switch r.state {
		case SpotOpen:
			r.set(SpotCancelled, "canceled-before-fulfillment", now)
		case SpotActive:
			r.set(SpotCancelled, "request-canceled-and-instance-running", now)
		}
		out.Cancelled = append(out.Cancelled, xmlCancelled{SpotInstanceRequestID: r.id, State: r.state})
	}
	return out, nil
}
