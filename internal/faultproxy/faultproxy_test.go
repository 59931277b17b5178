package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leakless/leakless/internal/faultproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer answers every line it is sent with the same line, until the
// test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

func start(t *testing.T) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(echoServer(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// roundTrip sends one line on c and reads it back.
func roundTrip(c net.Conn, line string) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echo mismatch: " + got)
	}
	return nil
}

// fresh dials the proxy and round-trips line on a new connection; a
// refused connection may fail at either step.
func fresh(p *faultproxy.Proxy, line string) error {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, line)
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond for up to two seconds: the proxy counts a connection
// once it has dialled the target, a moment after the client's dial returns.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestForwards(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	if err := roundTrip(c, "hello"); err != nil {
		t.Fatalf("round trip through the proxy: %v", err)
	}
	if s := p.Stats(); s.Accepted != 1 || s.Open != 1 || s.Dropped != 0 || s.Refused != 0 {
		t.Errorf("Stats = %+v; want 1 accepted, 1 open, none dropped or refused", s)
	}
}

func TestDropAllResetsOpenConnectionsAndKeepsAccepting(t *testing.T) {
	p := start(t)
	a, b := dial(t, p), dial(t, p)
	for _, c := range []net.Conn{a, b} {
		if err := roundTrip(c, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.DropAll(); n != 2 {
		t.Errorf("DropAll = %d; want 2", n)
	}
	for _, c := range []net.Conn{a, b} {
		if err := roundTrip(c, "after"); err == nil {
			t.Error("round trip on a dropped connection succeeded; want an error")
		}
	}
	// Kept open, so Open counts it: a connection closed at once may
	// already be gone from the count.
	if err := roundTrip(dial(t, p), "new"); err != nil {
		t.Errorf("new connection after DropAll: %v; want it forwarded", err)
	}
	if s := p.Stats(); s.Accepted != 3 || s.Dropped != 2 || s.Open != 1 {
		t.Errorf("Stats = %+v; want 3 accepted, 2 dropped, 1 open", s)
	}
}

func TestDownRefusesUntilUp(t *testing.T) {
	p := start(t)
	old := dial(t, p)
	if err := roundTrip(old, "x"); err != nil {
		t.Fatal(err)
	}
	p.Down()
	if err := roundTrip(old, "y"); err == nil {
		t.Error("a connection open when the proxy went down still works; want it dropped")
	}
	for range 3 {
		if err := fresh(p, "z"); err == nil {
			t.Error("round trip while down succeeded; want the connection refused")
		}
	}
	waitFor(t, "3 refusals", func() bool { return p.Stats().Refused == 3 })
	p.Up()
	if err := fresh(p, "back"); err != nil {
		t.Errorf("round trip after Up: %v", err)
	}
}

func TestOutageEndsByItself(t *testing.T) {
	p := start(t)
	const d = 300 * time.Millisecond
	began := time.Now()
	p.Outage(d)
	if err := fresh(p, "during"); err == nil {
		t.Error("round trip during the outage succeeded; want it refused")
	}
	for {
		err := fresh(p, "after")
		if err == nil {
			break
		}
		if time.Since(began) > d+2*time.Second {
			t.Fatalf("still refused %v after a %v outage: %v", time.Since(began), d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(began); took < d {
		t.Errorf("forwarding resumed after %v; want no sooner than %v", took, d)
	}
	// A shorter outage inside a longer one does not end it early.
	p.Outage(time.Hour)
	p.Outage(time.Millisecond)
	time.Sleep(10 * time.Millisecond)
	if err := fresh(p, "still down"); err == nil {
		t.Error("a 1ms outage ended a 1h one; want the longer to hold")
	}
}

func TestRefusesWhenTheTargetIsGone(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := l.Addr().String()
	_ = l.Close()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := fresh(p, "x"); err == nil {
		t.Error("round trip to a closed target succeeded")
	}
	waitFor(t, "a refusal", func() bool { return p.Stats().Refused == 1 })
}

func TestCloseEndsEverything(t *testing.T) {
	p, err := faultproxy.New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	if err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v; want nil", err)
	}
	if err := roundTrip(c, "y"); err == nil {
		t.Error("connection still forwarded after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("proxy still accepting after Close")
	}
	// goleak in TestMain checks that no forwarding goroutine is left.
}

func TestNewRejectsABadTarget(t *testing.T) {
	if p, err := faultproxy.New("no-port"); err == nil {
		_ = p.Close()
		t.Error(`New("no-port") = nil error; want one`)
	}
}
