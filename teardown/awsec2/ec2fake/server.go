package ec2fake

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"
)

// Server is a fake EC2 endpoint. Its methods are safe for concurrent use.
type Server struct {
	now         func() time.Time
	limits      Limits
	conditions  map[string]string // aws:ResourceTag/KEY = VALUE the caller's policy requires
	propagation time.Duration     // how long a launched instance stays invisible
	res         resources         // volumes, addresses, interfaces, spot requests (resources.go)

	mu           sync.Mutex
	rnd          *rand.Rand
	instances    map[string]*instance
	seq          uint64              // last instance or reservation number handed out
	order        uint64              // last launch-order number
	reqSeq       uint64              // last request number
	reservations map[string][]string // reservation id → instance ids, in launch order
	tokens       map[string]string   // RunInstances client token → reservation id
	faults       map[string]*faultPlan
	buckets      map[string]*bucket
	calls        map[string]int
	log          []Request

	srv    *httptest.Server // nil when in process
	url    string
	client *http.Client
	done   chan struct{} // closed by Close: in-flight delays end at once
	close  sync.Once
}

// Request is one call the server received, as [Server.Requests] reports it.
type Request struct {
	Action string
	// InstanceIDs are the ids the call named (InstanceId.N, InstanceId or
	// ResourceId.N), as sent: duplicates and order kept.
	InstanceIDs []string
	// SDKRequest is the Amz-Sdk-Request header, such as "attempt=1; max=1".
	SDKRequest string
	// Status is the HTTP status answered; 0 when there was no answer: the
	// caller's context ended, or the server closed, during added latency.
	Status int
	// Code is the EC2 error code answered; empty on success.
	Code string
	// At is when the request arrived, on the server's clock.
	At time.Time
}

// Option configures a [Server].
type Option func(*Server)

// WithClock sets the clock the token buckets refill by and launch times are
// taken from. The default is time.Now. Added latency always waits on real
// timers (fake ones inside a testing/synctest bubble).
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.now = now
		}
	}
}

// WithLimits turns on request throttling with the given token buckets:
// a call that finds its bucket short is answered RequestLimitExceeded
// (HTTP 503) and consumes nothing. Without it nothing is throttled.
// EC2Limits returns EC2's documented buckets.
func WithLimits(l Limits) Option {
	return func(s *Server) { s.limits = l }
}

// WithTagCondition models an IAM policy that allows TerminateInstances,
// StopInstances and ModifyInstanceAttribute only on instances tagged key
// with value (Condition: StringEquals aws:ResourceTag/key = value), and
// DeleteVolume, ReleaseAddress, DeleteNetworkInterface and
// CancelSpotInstanceRequests only on resources so tagged. As on
// EC2, one instance in the call without that tag value refuses the whole
// call with UnauthorizedOperation (HTTP 403), whose message names no
// instance, and nothing changes. Given more than once, every condition must
// hold, as the keys of one StringEquals block must. Ids that do not exist
// are answered InvalidInstanceID.NotFound before the condition is checked.
func WithTagCondition(key, value string) Option {
	return func(s *Server) {
		if s.conditions == nil {
			s.conditions = map[string]string{}
		}
		s.conditions[key] = value
	}
}

// WithPropagationDelay makes every instance that RunInstances launches
// invisible for d after its launch, by the server's clock (see
// [WithClock]), as EC2's eventual consistency does right after a launch:
// DescribeInstances leaves it out (instance-id filters included), and
// naming it in DescribeInstances, TerminateInstances, StopInstances,
// ModifyInstanceAttribute or CreateTags fails the whole call with
// InvalidInstanceID.NotFound, as an unknown id does. Instances added with
// [Server.Launch] are visible at once, and [Server.Instances] reports every
// instance, visible or not.
func WithPropagationDelay(d time.Duration) Option {
	return func(s *Server) { s.propagation = max(d, 0) }
}

// WithSeed seeds the random source behind [Server.SetErrorRate], so that a
// run's injected failures can be replayed. The default seed is 1.
func WithSeed(seed uint64) Option {
	return func(s *Server) { s.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// New starts a fake EC2 on a fresh 127.0.0.1 port. Point the SDK at it with
// BaseEndpoint = URL() and HTTPClient = Client(), and Close it when done.
func New(opts ...Option) *Server {
	s := newServer(opts)
	s.srv = httptest.NewServer(s)
	s.url = s.srv.URL
	s.client = &http.Client{Transport: readerBodies{s.srv.Client().Transport}}
	return s
}

// NewInProcess returns a fake EC2 that serves without a network listener:
// Client() hands each request straight to the server. It works inside a
// testing/synctest bubble, where the fake clock advances only while every
// goroutine waits on channels or timers, never on sockets. URL() is a
// placeholder that is never dialled.
func NewInProcess(opts ...Option) *Server {
	s := newServer(opts)
	s.url = "http://ec2fake.invalid"
	s.client = &http.Client{Transport: inProcess{s}}
	return s
}

func newServer(opts []Option) *Server {
	s := &Server{
		now:          time.Now,
		instances:    make(map[string]*instance),
		reservations: make(map[string][]string),
		tokens:       make(map[string]string),
		faults:       make(map[string]*faultPlan),
		buckets:      make(map[string]*bucket),
		calls:        make(map[string]int),
		done:         make(chan struct{}),
	}
	WithSeed(1)(s)
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	return s
}

// URL returns the endpoint to use as the SDK's BaseEndpoint.
func (s *Server) URL() string { return s.url }

// Client returns the HTTP client to use as the SDK's HTTPClient. Its idle
// connections are closed by Close.
//
// It sends request bodies as plain readers. The SDK's request body answers
// io.EOF from WriteTo once the SDK has closed it, which it does as soon as
// the response headers arrive; a server on the same machine can answer
// before net/http has finished with the body, and net/http then takes that
// io.EOF for a write error and closes the connection while the response is
// still being read ("use of closed network connection").
func (s *Server) Client() *http.Client { return s.client }

// readerBodies hides the WriteTo method of request bodies (see Client).
type readerBodies struct{ next http.RoundTripper }

func (t readerBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		r := req.Clone(req.Context())
		r.Body = plainBody{req.Body}
		req = r
	}
	return t.next.RoundTrip(req)
}

type plainBody struct{ io.ReadCloser }

// Close ends in-flight delays, closes client connections and stops the
// listener. It is safe to call more than once.
func (s *Server) Close() {
	s.close.Do(func() {
		close(s.done)
		if s.srv != nil {
			s.srv.Close()
		}
	})
}

// Calls returns how many requests for action the server has received,
// whatever it answered (throttles and injected faults included).
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// Requests returns every request answered so far, in the order the answers
// were decided.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	for i, r := range s.log {
		r.InstanceIDs = slices.Clone(r.InstanceIDs)
		out[i] = r
	}
	return out
}

// ServeHTTP answers one EC2 Query-protocol request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<20)
	if err := r.ParseForm(); err != nil {
		s.writeError(w, "", &Fault{Code: "MalformedQueryString", Message: err.Error()})
		return
	}
	q := query(r.Form)
	action := q.get("Action")

	s.mu.Lock()
	s.calls[action]++
	s.reqSeq++
	reqID := requestID(s.reqSeq)
	rec := Request{Action: action, InstanceIDs: q.namedIDs(action), SDKRequest: r.Header.Get("Amz-Sdk-Request"), At: s.now()}
	delay := s.plan(action).latency
	s.mu.Unlock()

	if delay > 0 && !s.wait(r.Context(), delay) {
		s.record(rec) // nothing was done
		if r.Context().Err() == nil {
			// The server is closing: drop the connection unanswered, as a
			// dying endpoint would.
			panic(http.ErrAbortHandler)
		}
		return
	}

	s.mu.Lock()
	body, fault := s.handle(action, q, rec.InstanceIDs, reqID)
	if fault != nil {
		rec.Status, rec.Code = fault.status(), fault.Code
	} else {
		rec.Status = http.StatusOK
	}
	s.log = append(s.log, rec)
	s.mu.Unlock()

	if fault != nil {
		s.writeError(w, reqID, fault)
		return
	}
	writeXML(w, http.StatusOK, action+"Response", body)
}

// handle decides the answer to one request: an injected fault, a throttle,
// or the action's own result. It runs with s.mu held.
func (s *Server) handle(action string, q query, ids []string, reqID string) (any, *Fault) {
	s.advance()
	if f := s.injected(action, ids); f != nil {
		return nil, f
	}
	if !s.admit(action, q) {
		return nil, &Fault{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
	}
	h, ok := actions[action]
	if !ok {
		return nil, &Fault{Code: "InvalidAction", Message: fmt.Sprintf("The action %s is not valid for this web service.", action)}
	}
	if q.get("DryRun") == "true" {
		return nil, s.dryRun(action, q, ids, reqID)
	}
	return h(s, q, reqID)
}

func (s *Server) record(rec Request) {
	s.mu.Lock()
	s.log = append(s.log, rec)
	s.mu.Unlock()
}

// wait sleeps for d unless the caller's context ends or the server closes
// first; it reports whether the full delay passed.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

func requestID(n uint64) string {
	return fmt.Sprintf("%08x-ec2f-4a4e-8000-%012x", uint32(n), n)
}

type errorResponse struct {
	Errors    []xmlError `xml:"Errors>Error"`
	RequestID string     `xml:"RequestID"`
}

type xmlError struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// writeError answers with EC2's error envelope, or, for a fault without a
// code, with the bare status a load balancer in front of EC2 would send.
func (s *Server) writeError(w http.ResponseWriter, reqID string, f *Fault) {
	if f.Code == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(f.status())
		fmt.Fprintln(w, http.StatusText(f.status()))
		return
	}
	writeXML(w, f.status(), "Response", errorResponse{
		Errors:    []xmlError{{Code: f.Code, Message: f.Message}},
		RequestID: reqID,
	})
}

// xmlns is the namespace of EC2's success responses.
const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// writeXML answers with v marshalled as the element name; success
// responses carry EC2's namespace, the error envelope none.
func writeXML(w http.ResponseWriter, status int, name string, v any) {
	start := xml.StartElement{Name: xml.Name{Local: name}}
	if status == http.StatusOK {
		start.Attr = []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: xmlns}}
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).EncodeElement(v, start); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Server", "AmazonEC2")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// inProcess hands requests straight to the server, with no socket.
type inProcess struct{ s *Server }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	select {
	case <-t.s.done:
		return nil, errors.New("ec2fake: server closed")
	default:
	}
	r := req.Clone(req.Context())
	rec := httptest.NewRecorder()
	if aborted := t.serve(rec, r); aborted {
		return nil, errors.New("ec2fake: server closed the connection")
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// serve runs the handler, reporting whether it aborted the connection.
func (t inProcess) serve(w http.ResponseWriter, r *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			aborted = true
		}
	}()
	t.s.ServeHTTP(w, r)
	return false
}
