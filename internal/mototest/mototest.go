package mototest

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/leakless/leakless/internal/deployment"
	"github.com/leakless/leakless/internal/pgtest"
)

// Region is the AWS region every configuration from this package uses.
const Region = "us-east-1"

// EnvURL names the environment variable that points the tests at an
// already-running moto server instead of starting one.
const EnvURL = "LEAKLESS_TEST_MOTO_URL"

// New returns a configuration for a fresh, isolated EC2 on the moto server:
// static credentials, region us-east-1, BaseEndpoint set, and a moto account
// no other call shares. Idle connections are closed when the test ends.
func New(t testing.TB) aws.Config {
	t.Helper()
	base := URL(t)

	users.Lock()
	if owned && users.n == 0 {
		if err := reset(base); err != nil {
			users.Unlock()
			t.Fatalf("mototest: %v", err)
		}
	}
	users.n++
	users.Unlock()
	t.Cleanup(func() {
		users.Lock()
		users.n--
		users.Unlock()
	})

	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	cfg := Config(base, &http.Client{Transport: transport})
	cfg.APIOptions = append(cfg.APIOptions, smithyhttp.AddHeaderValue("X-Moto-Account-Id", newAccountID(t)))
	return cfg
}

// Config returns a configuration for any EC2-compatible endpoint, such as an
// ec2fake server: static credentials, region us-east-1, BaseEndpoint set to
// endpoint, and requests sent through client (a client without keep-alives
// when client is nil, so no connection outlives a request).
//
// Request bodies go to client as plain readers: the SDK's own body answers
// io.EOF from WriteTo once the SDK has closed it, which it does when the
// response headers arrive, and net/http takes that for a write error and
// closes the connection mid-response when a server on the same machine
// answers before net/http has finished with the body.
func Config(endpoint string, client aws.HTTPClient) aws.Config {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLEAKLESSTEST", "leakless-test-secret", ""),
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   deployment.PlainBodies(client),
	}
}

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
	missing    bool // moto_server is not installed: skip, or fail under CI
	owned      bool // this binary started the server, so it may reset it

	users struct {
		sync.Mutex
		n int // tests currently holding a configuration from New
	}
)

// URL returns the base URL of the moto server, starting one if none is
// configured. It skips (or, under CI, fails) the test when there is none.
func URL(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		if v := os.Getenv(EnvURL); v != "" {
			// Shared with other binaries: probe it, never reset it.
			serverURL = strings.TrimRight(v, "/")
			serverErr = waitReady(http.MethodGet, serverURL+"/moto-api/", 30*time.Second)
			return
		}
		serverURL, serverErr = start()
		owned = serverErr == nil
	})
	if serverErr != nil {
		msg := "mototest: " + serverErr.Error()
		if missing {
			msg += "; install moto (pip install 'moto[server]') or set " + EnvURL + " to a running moto server"
		}
		if missing && !pgtest.InCI() {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return serverURL
}

// reset wipes every account's state on the server.
func reset(base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return call(ctx, http.MethodPost, base+"/moto-api/reset")
}

// call sends an empty request and wants a 200, on a connection that is
// closed straight after, so that no keep-alive goroutine outlives the call.
func call(ctx context.Context, method, u string) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	req.Close = true
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	return nil
}

// waitReady polls u until it answers 200.
func waitReady(method, u string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := call(ctx, method, u)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("moto did not answer within %v: %w", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newAccountID returns a random 12-digit moto account id.
func newAccountID(t testing.TB) string {
	n, err := rand.Int(rand.Reader, big.NewInt(900_000_000_000))
	if err != nil {
		t.Fatalf("mototest: account id: %v", err)
	}
	return fmt.Sprintf("%012d", n.Int64()+100_000_000_000)
}
