package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leakless/leakless/internal/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseTakesDefaultsFromTheEnvironment(t *testing.T) {
	c, err := parse(nil, env(map[string]string{
		"ADDR": "127.0.0.1:1234", "DATABASE_URL": "postgres://db", "EC2_ENDPOINT": "aws", "OWNER": "team=a", "STOP_ATTEMPTS": "7",
		"IMAGE_ID": "ami-1", "INSTANCE_TYPE": "m7g.large",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "127.0.0.1:1234" || c.DatabaseURL != "postgres://db" || c.EC2Endpoint != "aws" || c.Owner != "team=a" || c.attempts != 7 ||
		c.imageID != "ami-1" || c.instanceType != "m7g.large" {
		t.Errorf("config %+v, want the environment's values", c)
	}
	c, err = parse([]string{"-addr", ":1", "-attempts", "2"}, env(map[string]string{"ADDR": "127.0.0.1:1234"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != ":1" || c.attempts != 2 {
		t.Errorf("config %+v, want flags to win over the environment", c)
	}
}

func TestRunRejectsBadSettings(t *testing.T) {
	cases := map[string][]string{
		"unknown flag":     {"-nope"},
		"stray argument":   {"extra"},
		"owner not k=v":    {"-owner", "team"},
		"bad ec2 endpoint": {"-ec2-endpoint", "ftp://x"},
		"bad database url": {"-database-url", "postgres://%zz"},
		"bad listen addr":  {"-addr", "256.0.0.1:-1"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), args, env(nil), io.Discard, nil)
			if err == nil {
				t.Fatal("run: nil error, want one")
			}
		})
	}
}

// The server in memory and on PostgreSQL: serves the API, and returns
// once its context ends.
func TestRunServesUntilCancelled(t *testing.T) {
	for _, name := range []string{"memory", "postgres"} {
		t.Run(name, func(t *testing.T) {
			args := []string{"-addr", "127.0.0.1:0"}
			if name == "postgres" {
				args = append(args, "-database-url", pgtest.Open(t).URL)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addr := make(chan string, 1)
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, env(nil), io.Discard, func(a string) { addr <- a }) }()
			var base string
			select {
			case a := <-addr:
				base = "http://" + a
			case err := <-done:
				t.Fatalf("run returned before serving: %v", err)
			}

			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Post(base+"/workspaces", "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST: %d, want 201", resp.StatusCode)
			}
			req, _ := http.NewRequest(http.MethodDelete, base+resp.Header.Get("Location"), nil)
			resp, err = client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("DELETE: %d, want 204", resp.StatusCode)
			}

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return within 10s of cancellation")
			}
		})
	}
}
