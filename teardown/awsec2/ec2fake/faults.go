package ec2fake

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Fault is an error answer to inject.
type Fault struct {
	// Code is the EC2 error code, such as "RequestLimitExceeded". An empty
	// Code sends a bare HTTP status with a plain-text body instead of EC2's
	// XML envelope, as a load balancer in front of EC2 would.
	Code string
	// Message is the error message. Empty means EC2's wording for Code,
	// naming the request's instance ids where EC2 does.
	Message string
	// Status is the HTTP status. Zero means EC2's status for Code: 503 for
	// throttling and unavailability, 500 for internal errors, 401 for
	// AuthFailure, 403 for UnauthorizedOperation, 412 for DryRunOperation,
	// 400 for the rest (500 when Code is empty).
	Status int
}

func (f *Fault) status() int {
	if f.Status != 0 {
		return f.Status
	}
	switch f.Code {
	case "":
		return http.StatusInternalServerError
	case "RequestLimitExceeded", "ServiceUnavailable", "Unavailable":
		return http.StatusServiceUnavailable
	case "InternalError", "InternalFailure":
		return http.StatusInternalServerError
	case "AuthFailure":
		return http.StatusUnauthorized
	case "UnauthorizedOperation":
		return http.StatusForbidden
	case "DryRunOperation":
		return http.StatusPreconditionFailed
	default:
		return http.StatusBadRequest
	}
}

// faultPlan is what is injected into one action.
type faultPlan struct {
	script  []Fault // answered by the next calls, in order
	rate    float64 // chance that any other call fails with rated
	rated   Fault
	latency time.Duration
}

// plan returns action's fault plan, creating an empty one. It runs with
// s.mu held.
func (s *Server) plan(action string) *faultPlan {
	p, ok := s.faults[action]
	if !ok {
		p = &faultPlan{}
		s.faults[action] = p
	}
	return p
}

// Fail makes the next n calls of action fail with the EC2 error code code
// (with EC2's message and HTTP status for it). Calls to Fail and FailWith
// queue up: their faults are answered in the order they were added.
func (s *Server) Fail(action, code string, n int) {
	s.FailWith(action, Fault{Code: code}, n)
}

// FailWith makes the next n calls of action fail with f.
func (s *Server) FailWith(action string, f Fault, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.plan(action)
	for range n {
		p.script = append(p.script, f)
	}
}

// SetErrorRate makes each call of action fail with code with probability
// rate (0 turns it off), after any faults queued by Fail have been used.
// The random source is seeded (see WithSeed), so runs repeat.
func (s *Server) SetErrorRate(action, code string, rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.plan(action)
	p.rate, p.rated = rate, Fault{Code: code}
}

// SetLatency delays every answer to action by d (0 turns it off). A caller
// whose context ends during the delay gets no answer, and the call has no
// effect.
func (s *Server) SetLatency(action string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plan(action).latency = d
}

// injected returns the fault this call answers with, if any. It runs with
// s.mu held.
func (s *Server) injected(action string, ids []string) *Fault {
	p := s.faults[action]
	if p == nil {
		return nil
	}
	var f Fault
	switch {
	case len(p.script) > 0:
		f, p.script = p.script[0], p.script[1:]
	case p.rate > 0 && s.rnd.Float64() < p.rate:
		f = p.rated
	default:
		return nil
	}
	if f.Message == "" && f.Code != "" {
		f.Message = message(f.Code, ids)
	}
	return &f
}

// message returns EC2's wording for code, naming ids where EC2 does.
func message(code string, ids []string) string {
	first := ""
	if len(ids) > 0 {
		first = ids[0]
	}
	switch code {
	case "InvalidInstanceID.NotFound":
		return notFound(unique(ids))
	case "InvalidInstanceID.Malformed":
		return fmt.Sprintf("Invalid id: %q (expecting \"i-...\")", first)
	case "OperationNotPermitted":
		return fmt.Sprintf("The instance '%s' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.", first)
	case "IncorrectInstanceState":
		return fmt.Sprintf("This instance '%s' is not in a state from which it can be stopped.", first)
	case "RequestLimitExceeded":
		return "Request limit exceeded."
	case "InternalError":
		return "An internal error has occurred"
	case "ServiceUnavailable", "Unavailable":
		return "The service is unavailable. Please try again shortly."
	case "UnauthorizedOperation":
		return "You are not authorized to perform this operation."
	case "DryRunOperation":
		return "Request would have succeeded, but DryRun flag is set."
	case "AuthFailure":
		return "AWS was not able to validate the provided access credentials"
	default:
		return code
	}
}

// notFound is EC2's InvalidInstanceID.NotFound message: singular for one
// id, plural for several.
func notFound(ids []string) string {
	if len(ids) == 1 {
		return fmt.Sprintf("The instance ID '%s' does not exist", ids[0])
	}
	return fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(ids, ", "))
}
