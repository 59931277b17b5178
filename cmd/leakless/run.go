package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/deployment"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown/awsec2"
)

// Exit codes.
const (
	exitOK      = 0 // all is well
	exitFinding = 1 // leaks, a schema not at its version, a refused or failed stop
	exitError   = 2 // the command could not run
)

const usage = `usage: leakless COMMAND [flags]

commands:
  audit               census of owned instances against the host table; exit 1 when leaks exist
  plan                one dry-run sweep as JSON: what would be stopped, and why
  apply -plan FILE    stop exactly the planned instances still orphaned or pending
  ledger              the leak ledger, newest first
  migrate up|status|sql [store|events] [VERSION]
  forget RESOURCE_ID...  acknowledge permanent leaks dealt with by hand

"leakless COMMAND -h" lists a command's flags.
`

// command returns the subcommand named name, or nil.
func command(name string) func(ctx context.Context, c *cli, args []string) int {
	switch name {
	case "audit":
		return auditCmd
	case "plan":
		return plan
	case "apply":
		return apply
	case "ledger":
		return ledger
	case "migrate":
		return migrate
	case "forget":
		return forget
	}
	return nil
}

// run runs one command line and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	cmd := command(args[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "leakless: unknown command %q\n\n%s", args[0], usage)
		return exitError
	}
	c := &cli{name: args[0], getenv: getenv, stdout: stdout, stderr: stderr}
	return cmd(ctx, c, args[1:])
}

// cli is one command's settings and connections.
type cli struct {
	name           string
	getenv         func(string) string
	stdout, stderr io.Writer

	deployment.Flags
	region      string
	table       store.Table
	eventsTable string
	output      string

	pool   *pgxpool.Pool
	store  *store.Postgres
	events *events.Postgres
	ec2    *ec2.Client
	cloud  *awsec2.Client
	owner  map[string]string
}

// flags returns the command's flag set with the shared flags defined.
func (c *cli) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("leakless "+c.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	env := func(key, def string) string { return deployment.Env(c.getenv, key, def) }
	c.Flags.Register(fs, c.getenv, deployment.Defaults{EC2Endpoint: "aws"})
	fs.StringVar(&c.region, "region", c.getenv("AWS_REGION"), "EC2 region (env AWS_REGION); empty is "+deployment.DefaultRegion+" on an endpoint URL")
	fs.StringVar(&c.table.Name, "table", env("TABLE", "workspaces"), "the host's table, optionally schema-qualified (env TABLE)")
	fs.StringVar(&c.table.ID, "id-column", env("ID_COLUMN", "id"), "its primary key column (env ID_COLUMN)")
	fs.StringVar(&c.table.Status, "status-column", env("STATUS_COLUMN", "status"), "its status column (env STATUS_COLUMN)")
	fs.StringVar(&c.table.InstanceID, "instance-column", env("INSTANCE_COLUMN", "instance_id"), "its instance id column (env INSTANCE_COLUMN)")
	fs.StringVar(&c.table.Parent, "parent-column", env("PARENT_COLUMN", "parent_id"), "its parent id column; empty for none (env PARENT_COLUMN)")
	fs.StringVar(&c.table.Removed, "removed-status", env("REMOVED_STATUS", "removed"), "the status value of a removed row (env REMOVED_STATUS)")
	fs.StringVar(&c.eventsTable, "events-table", env("EVENTS_TABLE", "structure_events"), "the ledger's table (env EVENTS_TABLE)")
	fs.StringVar(&c.output, "output", env("OUTPUT", "table"), "output format: table or json (env OUTPUT)")
	return fs
}

// parse parses args; a usage error is reported and returned.
func (c *cli) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.output != "table" && c.output != "json" {
		return c.usageErr(fmt.Errorf("-output %q: want table or json", c.output))
	}
	if err := c.Check(); err != nil {
		return c.usageErr(err)
	}
	return nil
}

func (c *cli) usageErr(err error) error {
	fmt.Fprintf(c.stderr, "leakless %s: %v\n", c.name, err)
	return err
}

// fail reports err and returns the exit code for a command that could
// not run.
func (c *cli) fail(err error) int {
	if !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(c.stderr, "leakless %s: %v\n", c.name, err)
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitError
}

// openDatabase connects to PostgreSQL and builds the store and the ledger
// over it. It creates nothing.
func (c *cli) openDatabase(ctx context.Context) error {
	if c.DatabaseURL == "" {
		return errors.New("no database: set -database-url or DATABASE_URL")
	}
	pool, err := pgxpool.New(ctx, c.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	c.pool = pool
	if c.store, err = store.NewPgx(pool, c.table, store.WithRedriveGrace(c.RedriveGrace)); err != nil {
		return err
	}
	if c.events, err = events.NewPgx(pool, events.WithTable(c.eventsTable)); err != nil {
		return err
	}
	return nil
}

// openEC2 builds the SDK client and the owner-filtered awsec2 client.
func (c *cli) openEC2(ctx context.Context) error {
	owner, err := c.OwnerTags()
	if err != nil {
		return fmt.Errorf("%w (set -owner or OWNER to this deployment's owner tag)", err)
	}
	cfg, err := deployment.AWSConfig(ctx, c.EC2Endpoint, c.region)
	if err != nil {
		return err
	}
	c.ec2 = ec2.NewFromConfig(cfg)
	if c.cloud, err = awsec2.New(c.ec2, awsec2.WithOwner(owner)); err != nil {
		return err
	}
	c.owner = owner
	return nil
}

// open opens the database and, with cloud, EC2.
func (c *cli) open(ctx context.Context, cloud bool) error {
	if err := c.openDatabase(ctx); err != nil {
		return err
	}
	if cloud {
		return c.openEC2(ctx)
	}
	return nil
}

// close closes what open opened.
func (c *cli) close() {
	if c.pool != nil {
		c.pool.Close()
	}
}

// guardFlags are the row-gone guards audit and plan share.
type guardFlags struct {
	rowGone          bool
	minAge           time.Duration
	provisionTimeout time.Duration
	resourceTag      string
	keepTag          string
}

func (g *guardFlags) register(fs *flag.FlagSet, c *cli) {
	dur := func(key string, def time.Duration) time.Duration {
		if v := c.getenv(key); v != "" {
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		}
		return def
	}
	fs.DurationVar(&g.minAge, "min-age", dur("MIN_AGE", sweeper.DefaultMinAge),
		"an instance no row explains is a row-gone leak only past this age (env MIN_AGE)")
	fs.DurationVar(&g.provisionTimeout, "provision-timeout", dur("PROVISION_TIMEOUT", sweeper.DefaultProvisionTimeout),
		"a live row with no instance protects its tagged instances this long after their launch (env PROVISION_TIMEOUT)")
	fs.StringVar(&g.resourceTag, "resource-tag", deployment.Env(c.getenv, "RESOURCE_TAG", sweeper.DefaultResourceTag), "tag key holding the row id (env RESOURCE_TAG)")
	fs.StringVar(&g.keepTag, "keep-tag", deployment.Env(c.getenv, "KEEP_TAG", sweeper.DefaultKeepTag), "tag key that keeps an instance out of every reaping (env KEEP_TAG)")
}

func (g *guardFlags) check() error {
	if g.minAge <= 0 || g.provisionTimeout <= 0 {
		return fmt.Errorf("-min-age %v and -provision-timeout %v must be positive", g.minAge, g.provisionTimeout)
	}
	return nil
}

// words joins non-empty parts with ", ".
func words(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}
