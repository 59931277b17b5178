package ec2fake

import (
	"encoding/base64"
	"fmt"
)

// conditioned are the actions [WithTagCondition]'s policy governs.
var conditioned = map[string]bool{"TerminateInstances": true, "StopInstances": true, "ModifyInstanceAttribute": true}

// dryRun answers a request with DryRun=true, which only asks whether the
// caller may make it: UnauthorizedOperation when a tag condition refuses
// one of the instances, volumes, interfaces, addresses or spot requests it
// names, else DryRunOperation (HTTP 412). Nothing changes either way. As
// moto does, it does not look for unknown or malformed ids: only the
// permission is checked. It runs with s.mu held.
func (s *Server) dryRun(action string, q query, ids []string, reqID string) *Fault {
	if conditioned[action] {
		var found []*instance
		for _, id := range ids {
			if in, ok := s.instances[id]; ok && s.visible(in) {
				found = append(found, in)
			}
		}
		if f := s.authorize(action, reqID, found); f != nil {
			return f
		}
	}
	for _, tags := range s.dependentTags(action, q) {
		if f := s.authorizeTags(action, reqID, tags); f != nil {
			return f
		}
	}
	return &Fault{Code: "DryRunOperation", Message: message("DryRunOperation", nil)}
}

// dependentTags returns the tags of the dependents a delete, release or
// cancel names and the server knows. It runs with s.mu held.
func (s *Server) dependentTags(action string, q query) []map[string]string {
	s.res.init()
	var out []map[string]string
	switch action {
	case "DeleteVolume":
		if v, f := s.lookupVolume(q.get("VolumeId")); f == nil {
			out = append(out, v.tags)
		}
	case "DeleteNetworkInterface":
		if n, f := s.lookupInterface(q.get("NetworkInterfaceId")); f == nil {
			out = append(out, n.tags)
		}
	case "ReleaseAddress":
		if a, f := s.lookupAddress(q.get("AllocationId"), q.get("PublicIp")); f == nil {
			out = append(out, a.tags)
		}
	case "CancelSpotInstanceRequests":
		for _, id := range unique(q.list("SpotInstanceRequestId")) {
			if r, f := s.lookupSpot(id); f == nil {
				out = append(out, r.tags)
			}
		}
	}
	return out
}

// callerARN is the identity every request is made as.
const callerARN = "arn:aws:iam::" + ownerID + ":user/ec2fake"

// authorize applies the tag conditions of [WithTagCondition] to the
// instances an action names. One instance without a required tag value
// refuses the whole call, and the refusal names no instance: EC2 puts the
// details only in the encoded message, which callers cannot read without
// sts:DecodeAuthorizationMessage. It runs with s.mu held.
func (s *Server) authorize(action, reqID string, found []*instance) *Fault {
	for _, in := range found {
		for k, v := range s.conditions {
			if got, ok := in.Tags[k]; !ok || got != v {
				return unauthorized(action, reqID)
			}
		}
	}
	return nil
}

// unauthorized is EC2's answer to a call IAM refuses. The encoded failure
// message is opaque: standard base64, which holds no "-" and so never
// spells an instance id.
func unauthorized(action, reqID string) *Fault {
	encoded := base64.StdEncoding.EncodeToString([]byte("ec2fake denied ec2:" + action + " in request " + reqID))
	return &Fault{
		Code: "UnauthorizedOperation",
		Message: fmt.Sprintf("You are not authorized to perform this operation. User: %s is not authorized to perform: ec2:%s "+
			"because no identity-based policy allows the ec2:%s action. Encoded authorization failure message: %s",
			callerARN, action, action, encoded),
	}
}
