package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/faultproxy"
	"github.com/leakless/leakless/internal/pgtest"
)

// syncBuffer is the server's stderr, read while it writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs the server with args until the test ends and returns its
// base URL and its log.
func serve(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), env(nil), logs, func(a string) { addr <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a, logs
	case err := <-done:
		t.Fatalf("run returned before serving: %v", err)
		return "", nil
	}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /healthz follows the database: ok while it answers, 503 with the reason
// while it is down, ok again once it is back.
func TestHealthzFollowsTheDatabase(t *testing.T) {
	db := pgtest.Open(t)
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	u.Host = proxy.Addr()
	base, _ := serve(t, "-database-url", u.String())

	if status, body := get(t, base+"/healthz"); status != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz with the database up: %d %q, want 200 ok", status, body)
	}
	proxy.Down()
	if status, body := get(t, base+"/healthz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "database unreachable") {
		t.Fatalf("/healthz with the database down: %d %q, want 503 database unreachable", status, body)
	}
	proxy.Up()
	if status, _ := get(t, base+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz with the database back: %d, want 200", status)
	}
}

// /metrics exports request durations and the store's backlog; every
// request is in the access log.
func TestMetricsAndAccessLog(t *testing.T) {
	base, logs := serve(t)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post(base+"/workspaces", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, _ := get(t, base+"/workspaces/not-an-id"); status != http.StatusBadRequest {
		t.Fatalf("GET of a malformed id: %d, want 400", status)
	}
	status, metrics := get(t, base+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="201"`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="400"`,
		"leakless_store_pending{", "leakless_store_permanent{", "leakless_store_pending_oldest_age_seconds",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}
	for _, want := range []string{
		`msg="httpserver: request" method=POST path=/workspaces status=201 duration=`,
		`msg="httpserver: request" method=GET path=/workspaces/not-an-id status=400 duration=`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("access log lacks %q:\n%s", want, logs.String())
		}
	}
}
