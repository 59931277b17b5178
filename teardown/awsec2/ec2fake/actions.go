package ec2fake

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// handler performs one action with s.mu held. It returns the response body
// (marshalled inside <ActionResponse>) or the fault to answer with.
type handler func(s *Server, q query, reqID string) (any, *Fault)

// actions are the EC2 actions the server speaks.
var actions = map[string]handler{
	"RunInstances":            (*Server).runInstances,
	"DescribeInstances":       (*Server).describeInstances,
	"DescribeInstanceTypes":   (*Server).describeInstanceTypes, // instancetypes.go
	"TerminateInstances":      (*Server).terminateInstances,
	"StopInstances":           (*Server).stopInstances,
	"ModifyInstanceAttribute": (*Server).modifyInstanceAttribute,
	"CreateTags":              (*Server).createTags,

	// What an instance leaves behind: volumes.go, addresses.go,
	// interfaces.go, spot.go.
	"CreateVolume":                 (*Server).createVolumeAction,
	"AttachVolume":                 (*Server).attachVolumeAction,
	"DescribeVolumes":              (*Server).describeVolumes,
	"DeleteVolume":                 (*Server).deleteVolumeAction,
	"AllocateAddress":              (*Server).allocateAddress,
	"AssociateAddress":             (*Server).associateAddress,
	"DescribeAddresses":            (*Server).describeAddresses,
	"ReleaseAddress":               (*Server).releaseAddress,
	"CreateNetworkInterface":       (*Server).createNetworkInterface,
	"AttachNetworkInterface":       (*Server).attachNetworkInterface,
	"DescribeNetworkInterfaces":    (*Server).describeNetworkInterfaces,
	"DeleteNetworkInterface":       (*Server).deleteNetworkInterface,
	"RequestSpotInstances":         (*Server).requestSpotInstances,
	"DescribeSpotInstanceRequests": (*Server).describeSpotInstanceRequests,
	"CancelSpotInstanceRequests":   (*Server).cancelSpotInstanceRequests,
}

// ownerID is the account every fake reservation belongs to.
const ownerID = "123456789012"

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func stateOf(name string) xmlState { return xmlState{Code: stateCodes[name], Name: name} }

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type tag = xmlTag

type xmlInstance struct {
	InstanceID   string   `xml:"instanceId"`
	ImageID      string   `xml:"imageId"`
	State        xmlState `xml:"instanceState"`
	InstanceType string   `xml:"instanceType"`
	LaunchTime   string   `xml:"launchTime"`
	ClientToken  string   `xml:"clientToken,omitempty"`
	Tags         []xmlTag `xml:"tagSet>item"`
	xmlInstanceLinks
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

type runResponse struct {
	RequestID string `xml:"requestId"`
	xmlReservation
}

type describeResponse struct {
	RequestID    string           `xml:"requestId"`
	Reservations []xmlReservation `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type xmlChange struct {
	InstanceID string   `xml:"instanceId"`
	Current    xmlState `xml:"currentState"`
	Previous   xmlState `xml:"previousState"`
}

type changeResponse struct {
	RequestID string      `xml:"requestId"`
	Instances []xmlChange `xml:"instancesSet>item"`
}

type returnResponse struct {
	RequestID string `xml:"requestId"`
	Return    bool   `xml:"return"`
}

func (in *instance) xml() xmlInstance {
	x := xmlInstance{
		InstanceID:   in.ID,
		ImageID:      in.imageID,
		State:        stateOf(in.State),
		InstanceType: "t3.micro",
		LaunchTime:   in.LaunchTime.UTC().Format("2006-01-02T15:04:05.000Z"),
		ClientToken:  in.clientToken,
	}
	x.xmlInstanceLinks = in.links.xml()
	for _, k := range slices.Sorted(maps.Keys(in.Tags)) {
		x.Tags = append(x.Tags, xmlTag{Key: k, Value: in.Tags[k]})
	}
	return x
}

func missing(param string) *Fault {
	return &Fault{Code: "MissingParameter", Message: "The request must contain the parameter " + param}
}

func invalidValue(format string, args ...any) *Fault {
	return &Fault{Code: "InvalidParameterValue", Message: fmt.Sprintf(format, args...)}
}

// validID reports whether id has EC2's instance-id form: "i-" and 8 or 17
// lower-case hex digits.
func validID(id string) bool {
	hex, ok := strings.CutPrefix(id, "i-")
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

// lookup resolves ids to instances. Like EC2 it fails the whole call on a
// malformed id, or on unknown (or not yet visible) ids, naming every
// unknown one.
func (s *Server) lookup(ids []string) ([]*instance, *Fault) {
	var unknown []string
	out := make([]*instance, 0, len(ids))
	for _, id := range ids {
		if !validID(id) {
			return nil, &Fault{Code: "InvalidInstanceID.Malformed", Message: message("InvalidInstanceID.Malformed", []string{id})}
		}
		in, ok := s.instances[id]
		if !ok || !s.visible(in) {
			unknown = append(unknown, id)
			continue
		}
		out = append(out, in)
	}
	if len(unknown) > 0 {
		return nil, &Fault{Code: "InvalidInstanceID.NotFound", Message: notFound(unknown)}
	}
	return out, nil
}

// maxLaunch is the most instances one RunInstances call launches.
const maxLaunch = 1000

func (s *Server) runInstances(q query, reqID string) (any, *Fault) {
	image := q.get("ImageId")
	if image == "" {
		return nil, missing("ImageId")
	}
	if !q.has("MinCount") {
		return nil, missing("MinCount")
	}
	if !q.has("MaxCount") {
		return nil, missing("MaxCount")
	}
	minCount, err1 := strconv.Atoi(q.get("MinCount"))
	maxCount, err2 := strconv.Atoi(q.get("MaxCount"))
	if err1 != nil || err2 != nil || minCount < 1 || maxCount < minCount {
		return nil, invalidValue("Invalid MinCount %q / MaxCount %q", q.get("MinCount"), q.get("MaxCount"))
	}
	// EC2 launches at most what the account's limit allows; without a
	// bound, one request could make the fake allocate without end.
	if minCount > maxLaunch {
		return nil, &Fault{Code: "InstanceLimitExceeded", Message: fmt.Sprintf("You have requested more instances (%d) than your current instance limit of %d allows.", minCount, maxLaunch)}
	}
	maxCount = min(maxCount, maxLaunch)
	// A repeated client token returns the first call's reservation and
	// launches nothing: RunInstances is idempotent by token.
	token := q.get("ClientToken")
	if res, ok := s.tokens[token]; ok && token != "" {
		return s.reservationResponse(res, reqID), nil
	}
	tags := map[string]string{}
	for _, i := range q.indexes("TagSpecification") {
		p := "TagSpecification." + strconv.Itoa(i)
		if q.get(p+".ResourceType") != "instance" {
			continue
		}
		for _, t := range q.tags(p + ".Tag") {
			tags[t.Key] = t.Value
		}
	}
	protected := q.get("DisableApiTermination") == "true"
	equip, f := s.prepareLaunch(q, maxCount)
	if f != nil {
		return nil, f
	}
	res := s.nextID("r-")
	now := s.now()
	launched := make([]*instance, 0, maxCount)
	for range maxCount {
		in := &instance{
			Instance:    Instance{ID: s.nextID("i-"), State: Running, LaunchTime: now, Tags: tags, Protected: protected},
			reservation: res,
			imageID:     image,
			clientToken: token,
			visibleAt:   now.Add(s.propagation),
		}
		s.add(in)
		launched = append(launched, in)
	}
	equip(launched)
	if token != "" {
		s.tokens[token] = res
	}
	out := s.reservationResponse(res, reqID)
	for i := range out.Instances {
		out.Instances[i].State = stateOf(Pending) // EC2's answer; the instance is running by the next call
	}
	return out, nil
}

func (s *Server) reservationResponse(res, reqID string) *runResponse {
	out := &runResponse{RequestID: reqID, xmlReservation: xmlReservation{ReservationID: res, OwnerID: ownerID}}
	for _, id := range s.reservations[res] {
		out.Instances = append(out.Instances, s.instances[id].xml())
	}
	return out
}

func (s *Server) describeInstances(q query, reqID string) (any, *Fault) {
	ids := unique(q.list("InstanceId"))
	if len(ids) > 0 && q.has("MaxResults") {
		return nil, &Fault{Code: "InvalidParameterCombination", Message: "The parameter instancesSet cannot be used with the parameter maxResults"}
	}
	var pool []*instance
	if len(ids) > 0 {
		found, f := s.lookup(ids)
		if f != nil {
			return nil, f
		}
		pool = found
		slices.SortFunc(pool, func(a, b *instance) int { return cmp.Compare(a.seq, b.seq) })
	} else {
		pool = s.described()
	}
	filters := q.filters()
	for _, f := range filters {
		if !knownFilter(f.name) {
			return nil, invalidValue("The filter '%s' is invalid", f.name)
		}
	}
	var hits []*instance
	for _, in := range pool {
		if matchesAll(in, filters) {
			hits = append(hits, in)
		}
	}

	limit, offset := len(hits), 0
	if q.has("MaxResults") {
		n, err := strconv.Atoi(q.get("MaxResults"))
		if err != nil || n < 5 || n > 1000 {
			return nil, invalidValue("Value ( %s ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", q.get("MaxResults"))
		}
		limit = n
	}
	if tok := q.get("NextToken"); tok != "" {
		n, ok := parseToken(tok)
		if !ok || n > len(hits) {
			return nil, invalidValue("Invalid value '%s' for nextToken", tok)
		}
		offset = n
	}
	end := min(len(hits), offset+limit)
	out := &describeResponse{RequestID: reqID}
	if end < len(hits) {
		out.NextToken = token(end)
	}
	// One reservation element per run of instances launched together.
	for _, in := range hits[offset:end] {
		n := len(out.Reservations)
		if n == 0 || out.Reservations[n-1].ReservationID != in.reservation {
			out.Reservations = append(out.Reservations, xmlReservation{ReservationID: in.reservation, OwnerID: ownerID})
			n++
		}
		out.Reservations[n-1].Instances = append(out.Reservations[n-1].Instances, in.xml())
	}
	return out, nil
}

// token and parseToken make the opaque NextToken: a position in the
// filtered list.
func token(offset int) string { return "ec2fake-" + strconv.Itoa(offset) }

func parseToken(tok string) (int, bool) {
	s, ok := strings.CutPrefix(tok, "ec2fake-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

func knownFilter(name string) bool {
	switch name {
	case "tag-key", "instance-id", "instance-state-name":
		return true
	}
	return strings.HasPrefix(name, "tag:") && len(name) > len("tag:")
}

// matchesAll applies filters as EC2 does: every filter must match, and a
// filter matches when any of its values does.
func matchesAll(in *instance, filters []filter) bool {
	for _, f := range filters {
		if !slices.ContainsFunc(f.values, func(v string) bool { return matches(in, f.name, v) }) {
			return false
		}
	}
	return true
}

func matches(in *instance, name, pattern string) bool {
	switch name {
	case "instance-id":
		return match(pattern, in.ID)
	case "instance-state-name":
		return match(pattern, in.State)
	case "tag-key":
		for k := range in.Tags {
			if match(pattern, k) {
				return true
			}
		}
		return false
	default:
		v, ok := in.Tags[strings.TrimPrefix(name, "tag:")]
		return ok && match(pattern, v)
	}
}

// targets resolves the InstanceId.N of a TerminateInstances or
// StopInstances call, which EC2 refuses outright when it names none.
func (s *Server) targets(q query) ([]*instance, *Fault) {
	ids := unique(q.list("InstanceId"))
	if len(ids) == 0 {
		return nil, &Fault{Code: "InvalidParameterCombination", Message: "No instances specified"}
	}
	return s.lookup(ids)
}

func (s *Server) terminateInstances(q query, reqID string) (any, *Fault) {
	found, f := s.targets(q)
	if f != nil {
		return nil, f // one bad id fails the whole call: nothing is terminated
	}
	if f := s.authorize("TerminateInstances", reqID, found); f != nil {
		return nil, f
	}
	for _, in := range found {
		if in.Protected && in.State != Terminated {
			return nil, &Fault{Code: "OperationNotPermitted", Message: message("OperationNotPermitted", []string{in.ID})}
		}
	}
	out := &changeResponse{RequestID: reqID}
	for _, in := range found {
		prev := in.State
		cur := ShuttingDown // EC2's answer; the instance is terminated by the next call
		if prev == Terminated {
			cur = Terminated
		}
		in.State = Terminated
		if prev != Terminated {
			s.terminated(in)
		}
		out.Instances = append(out.Instances, xmlChange{InstanceID: in.ID, Current: stateOf(cur), Previous: stateOf(prev)})
	}
	return out, nil
}

func (s *Server) stopInstances(q query, reqID string) (any, *Fault) {
	found, f := s.targets(q)
	if f != nil {
		return nil, f
	}
	if f := s.authorize("StopInstances", reqID, found); f != nil {
		return nil, f
	}
	for _, in := range found {
		switch in.State {
		case Pending, ShuttingDown, Terminated:
			return nil, &Fault{Code: "IncorrectInstanceState", Message: message("IncorrectInstanceState", []string{in.ID})}
		}
	}
	out := &changeResponse{RequestID: reqID}
	for _, in := range found {
		prev, cur := in.State, in.State
		if prev == Running {
			cur = Stopping // EC2's answer; the instance is stopped by the next call
		}
		in.State = Stopped
		out.Instances = append(out.Instances, xmlChange{InstanceID: in.ID, Current: stateOf(cur), Previous: stateOf(prev)})
	}
	return out, nil
}

func (s *Server) modifyInstanceAttribute(q query, reqID string) (any, *Fault) {
	id := q.get("InstanceId")
	if id == "" {
		return nil, missing("InstanceId")
	}
	found, f := s.lookup([]string{id})
	if f != nil {
		return nil, f
	}
	if f := s.authorize("ModifyInstanceAttribute", reqID, found); f != nil {
		return nil, f
	}
	v, set := q.get("DisableApiTermination.Value"), q.has("DisableApiTermination.Value")
	if !set && q.get("Attribute") == "disableApiTermination" {
		v, set = q.get("Value"), true
	}
	if set {
		found[0].Protected = v == "true"
	}
	return &returnResponse{RequestID: reqID, Return: true}, nil
}

func (s *Server) createTags(q query, reqID string) (any, *Fault) {
	ids := unique(q.list("ResourceId"))
	if len(ids) == 0 {
		return nil, missing("ResourceId")
	}
	tags := q.tags("Tag")
	if len(tags) == 0 {
		return nil, missing("Tag")
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "i-") {
			return nil, &Fault{Code: "InvalidID", Message: fmt.Sprintf("The ID '%s' is not valid", id)}
		}
	}
	found, f := s.lookup(ids)
	if f != nil {
		return nil, f
	}
	for _, in := range found {
		for _, t := range tags {
			in.Tags[t.Key] = t.Value
		}
	}
	return &returnResponse{RequestID: reqID, Return: true}, nil
}
