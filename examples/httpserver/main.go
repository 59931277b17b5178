package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/examples/internal/backend"
	"github.com/leakless/leakless/teardown"
)

// shutdownTimeout bounds how long in-flight requests may finish after a
// signal. A DELETE in flight is allowed to complete its stops.
const shutdownTimeout = workspaces.DefaultDeleteTimeout

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	addr         string
	attempts     int
	imageID      string
	instanceType string
	backend.Flags
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("httpserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", backend.Env(getenv, "ADDR", "127.0.0.1:8080"), "listen address (env ADDR)")
	attempts, err := strconv.Atoi(backend.Env(getenv, "STOP_ATTEMPTS", strconv.Itoa(teardown.DefaultMaxAttempts)))
	if err != nil {
		return c, fmt.Errorf("STOP_ATTEMPTS: %w", err)
	}
	fs.IntVar(&c.attempts, "attempts", attempts, "stop attempts per instance on DELETE (env STOP_ATTEMPTS)")
	fs.StringVar(&c.imageID, "image", backend.Env(getenv, "IMAGE_ID", workspaces.DefaultImageID), "AMI every workspace launches (env IMAGE_ID)")
	fs.StringVar(&c.instanceType, "instance-type", backend.Env(getenv, "INSTANCE_TYPE", workspaces.DefaultInstanceType), "instance type every workspace launches (env INSTANCE_TYPE)")
	c.Flags.Register(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return c, nil
}

// run serves until ctx ends. ready, if not nil, is called with the
// address once the server listens.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(addr string)) error {
	c, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	owner, db, cloud, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer db.Close(context.WithoutCancel(ctx))
	defer cloud.Close()
	// Concurrent DELETEs share TerminateInstances calls: a burst of a
	// thousand single stops is two calls of EC2's request budget, not a
	// thousand. Closed after the server has drained its requests.
	stopper, err := teardown.Coalesce(cloud.Stopper)
	if err != nil {
		return err
	}
	defer stopper.Close()

	h, err := workspaces.New(workspaces.Config{
		Store: db.Store, Rows: db.Rows, Events: db.Events, Ledger: db.Ledger,
		EC2: cloud.Client, Stopper: stopper, Owner: owner,
		ImageID: c.imageID, InstanceType: c.instanceType,
		Retry:  []teardown.Option{teardown.WithMaxAttempts(c.attempts)},
		Logger: log,
	})
	if err != nil {
		return err
	}
	obs, err := newObserved(log, db.Pool, db.Store)
	if err != nil {
		return err
	}
	defer obs.shutdown(context.WithoutCancel(ctx))
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: obs.handler(h), ReadHeaderTimeout: 10 * time.Second}
	log.Info("httpserver: listening", "addr", ln.Addr().String(), "database", storeName(c.DatabaseURL), "ec2", cloud.Endpoint)
	if ready != nil {
		ready(ln.Addr().String())
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	log.Info("httpserver: stopped")
	return err
}

func storeName(url string) string {
	if url == "" {
		return "memory"
	}
	return "postgres"
}
