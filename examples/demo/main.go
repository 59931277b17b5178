package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runMain(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// runMain is main without the process: it returns the exit status.
func runMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parse(args, getenv, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "demo:", err)
		return 2
	}
	res, err := run(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	if err := res.Err(); err != nil {
		fmt.Fprintln(stdout, "FAIL:", err)
		return 1
	}
	fmt.Fprintln(stdout, "OK: nothing leaked but the protected instance, which is on record; nothing in use was terminated.")
	return 0
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Workspaces, "workspaces", c.Workspaces, "workspaces to launch and delete")
	fs.IntVar(&c.Live, "live", c.Live, "workspaces to launch and keep: the sweeper must leave them alone")
	fs.IntVar(&c.FailTrees, "fail-trees", c.FailTrees, "deletes whose every stop attempt gets a 5xx (embedded EC2 only)")
	fs.Float64Var(&c.ThrottleRate, "throttle-rate", c.ThrottleRate, "share of other TerminateInstances calls answered RequestLimitExceeded (embedded EC2 only)")
	fs.IntVar(&c.Attempts, "attempts", c.Attempts, "stop attempts per instance, per DELETE and per sweeper pass")
	fs.DurationVar(&c.MinAge, "min-age", c.MinAge, "sweeper RowGone.MinAge: younger instances are never row-gone candidates")
	fs.DurationVar(&c.RedriveGrace, "redrive-grace", c.RedriveGrace, "how long the sweeper leaves a row alone after a DELETE marked it removed (the library's default is 2m)")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "time between sweeper passes")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "give up waiting for the sweeper to drain after this long")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "API requests in flight at once")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed for the embedded EC2's random faults")
	fs.StringVar(&c.DatabaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL); empty runs in memory")
	fs.StringVar(&c.EC2Endpoint, "ec2-endpoint", getenv("EC2_ENDPOINT"), `EC2 endpoint (env EC2_ENDPOINT): empty for the embedded fake, a URL such as moto's, or "aws"`)
	fs.BoolVar(&c.Verbose, "v", false, "log every API and sweeper step to stderr")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.Verbose {
		c.Log = stderr
	}
	return c, c.validate()
}
