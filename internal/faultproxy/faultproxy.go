// Package faultproxy is a TCP proxy for tests that need a database (or any
// TCP server) to go away and come back while the client keeps its address.
//
// A [Proxy] listens on 127.0.0.1 and forwards every connection to its
// target. Point the client at [Proxy.Addr] instead of the server, then:
//
//	p.DropAll()          // every open connection is reset, as in a failover
//	p.Outage(2 * time.Second) // drop them and refuse new ones for 2s
//	p.Down(); ...; p.Up() // the same, until told otherwise
//
// A refused connection is accepted and reset at once, so the client sees
// what it sees when the server's port is closed or the server dies during
// the handshake, and the proxy's address stays the same throughout. Dropped
// connections are reset (SO_LINGER 0) rather than closed cleanly: a client
// that writes to one fails at once instead of waiting for an answer that
// never comes, which is what a restarted server's peer sees.
//
// [Proxy.Close] stops the listener and every forwarding goroutine before it
// returns.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards TCP connections from [Proxy.Addr] to a target address,
// with controls to drop and refuse them. It is safe for concurrent use.
type Proxy struct {
	target string
	l      net.Listener
	wg     sync.WaitGroup // the accept loop and every forwarding goroutine

	mu        sync.Mutex
	conns     map[*link]struct{}
	down      bool      // refuse until Up
	downUntil time.Time // refuse until then
	closed    bool
	stats     Stats
}

// Stats counts what a [Proxy] has done since [New].
type Stats struct {
	Accepted int64 // connections forwarded to the target
	Refused  int64 // connections reset on arrival during an outage, or because the target refused them
	Dropped  int64 // forwarded connections the proxy reset
	Open     int64 // forwarded connections open now
}

// link is one forwarded connection: the client's side and the target's.
type link struct{ client, server net.Conn }

// New starts a proxy on a free 127.0.0.1 port that forwards to target
// ("host:port"). Nothing is dialled until a client connects.
func New(target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{target: target, l: l, conns: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients should connect to, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// DropAll resets every open connection and returns how many there were.
// New connections are still accepted.
func (p *Proxy) DropAll() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for c := range p.conns {
		links = append(links, c)
		delete(p.conns, c)
	}
	p.stats.Dropped += int64(len(links))
	p.stats.Open = int64(len(p.conns))
	p.mu.Unlock()
	for _, c := range links {
		c.reset()
	}
	return len(links)
}

// Outage drops every open connection and refuses new ones for d, after
// which connections are forwarded again without any further call. An
// Outage during a longer one, or during [Proxy.Down], does not shorten it.
func (p *Proxy) Outage(d time.Duration) {
	p.mu.Lock()
	if until := time.Now().Add(d); until.After(p.downUntil) {
		p.downUntil = until
	}
	p.mu.Unlock()
	p.DropAll()
}

// Down drops every open connection and refuses new ones until [Proxy.Up].
func (p *Proxy) Down() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.DropAll()
}

// Up ends an outage begun by [Proxy.Down] or [Proxy.Outage]: new
// connections are forwarded again.
func (p *Proxy) Up() {
	p.mu.Lock()
	p.down = false
	p.downUntil = time.Time{}
	p.mu.Unlock()
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close stops accepting, resets every open connection and returns once
// every goroutine the proxy started has exited. Closing twice is a no-op.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.l.Close()
	p.DropAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A client that gave up mid-handshake, or out of descriptors
			// for a moment: neither ends the proxy.
			time.Sleep(time.Millisecond)
			continue
		}
		if p.refusing() {
			p.refuse(c)
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// refusing reports whether an outage is on now.
func (p *Proxy) refusing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down || time.Now().Before(p.downUntil)
}

func (p *Proxy) refuse(c net.Conn) {
	p.mu.Lock()
	p.stats.Refused++
	p.mu.Unlock()
	resetConn(c)
}

// forward dials the target for client c and copies both ways until either
// side ends or the proxy drops the link.
func (p *Proxy) forward(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.refuse(c)
		return
	}
	l := &link{client: c, server: s}
	p.mu.Lock()
	if p.closed || p.down || time.Now().Before(p.downUntil) {
		// An outage began while this connection was being dialled.
		p.stats.Refused++
		p.mu.Unlock()
		l.reset()
		return
	}
	p.conns[l] = struct{}{}
	p.stats.Accepted++
	p.stats.Open = int64(len(p.conns))
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done // one side ended: end the other, so its copy returns too
	p.mu.Lock()
	_, mine := p.conns[l]
	delete(p.conns, l)
	p.stats.Open = int64(len(p.conns))
	p.mu.Unlock()
	if mine {
		_ = c.Close()
		_ = s.Close()
	}
	<-done
}

// reset ends both sides of l abruptly.
func (l *link) reset() {
	resetConn(l.client)
	resetConn(l.server)
}

// resetConn closes c with SO_LINGER 0, so the peer gets a reset, not a
// clean end of stream it might mistake for an answer.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
