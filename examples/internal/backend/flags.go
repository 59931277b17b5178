package backend

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/leakless/leakless/store"
)

// DefaultOwnerTag is the owner tag the example programs put on every
// instance they launch, and the only instances they will ever stop.
const DefaultOwnerTag = "leakless:owner=workspaces-example"

// Flags are the settings every example program shares. Each flag's default
// comes from the environment variable named beside it.
type Flags struct {
	// DatabaseURL (-database-url, DATABASE_URL) is a PostgreSQL URL; empty
	// keeps the table and the events in memory.
	DatabaseURL string
	// EC2Endpoint (-ec2-endpoint, EC2_ENDPOINT) is empty for an embedded
	// fake EC2, a URL for an EC2-compatible endpoint such as moto, or "aws"
	// for AWS itself through the default configuration chain.
	EC2Endpoint string
	// Owner (-owner, OWNER) is the owner tag, KEY=VALUE.
	Owner string
	// RedriveGrace (-redrive-grace, REDRIVE_GRACE) is how long the sweeper
	// leaves a row alone after a DELETE marked it removed and is stopping
	// its instance itself.
	RedriveGrace time.Duration

	err error // a bad value in the environment, reported by Open
}

// Register defines the flags on fs, taking defaults from getenv.
func (f *Flags) Register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&f.DatabaseURL, "database-url", getenv("DATABASE_URL"),
		"PostgreSQL URL (env DATABASE_URL); empty keeps everything in memory")
	fs.StringVar(&f.EC2Endpoint, "ec2-endpoint", getenv("EC2_ENDPOINT"),
		`EC2 endpoint (env EC2_ENDPOINT): empty for an embedded fake EC2, a URL such as moto's, or "aws"`)
	fs.StringVar(&f.Owner, "owner", Env(getenv, "OWNER", DefaultOwnerTag),
		"owner tag KEY=VALUE (env OWNER): put on every instance launched, required of every instance stopped")
	grace := store.DefaultRedriveGrace
	if v := getenv("REDRIVE_GRACE"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			grace = d
		} else {
			f.err = fmt.Errorf("backend: REDRIVE_GRACE: %w", err)
		}
	}
	fs.DurationVar(&f.RedriveGrace, "redrive-grace", grace,
		"after a DELETE marks a row removed, how long the sweeper leaves it to the DELETE's own stops (env REDRIVE_GRACE)")
}

// OwnerTags parses Owner into the tag map the EC2 client and the API use.
func (f *Flags) OwnerTags() (map[string]string, error) {
	k, v, ok := strings.Cut(f.Owner, "=")
	if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("backend: owner tag %q is not KEY=VALUE", f.Owner)
	}
	return map[string]string{strings.TrimSpace(k): strings.TrimSpace(v)}, nil
}

// Env returns getenv(key), or def when it is empty.
func Env(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// Open parses the owner tag and opens the database and EC2 the flags name,
// closing whatever it opened when a later step fails. The caller closes
// both when done.
func (f *Flags) Open(ctx context.Context) (owner map[string]string, db *Database, cloud *EC2, err error) {
	if f.err != nil {
		return nil, nil, nil, f.err
	}
	if f.RedriveGrace < 0 {
		return nil, nil, nil, fmt.Errorf("backend: -redrive-grace %v: must not be negative", f.RedriveGrace)
	}
	if owner, err = f.OwnerTags(); err != nil {
		return nil, nil, nil, err
	}
	opts := DatabaseOptions{URL: f.DatabaseURL, Store: []store.Option{store.WithRedriveGrace(f.RedriveGrace)}}
	if db, err = OpenDatabase(ctx, opts); err != nil {
		return nil, nil, nil, err
	}
	if cloud, err = OpenEC2(ctx, f.EC2Endpoint, owner, nil); err != nil {
		_ = db.Close(context.WithoutCancel(ctx))
		return nil, nil, nil, err
	}
	return owner, db, cloud, nil
}
