package deployment

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/leakless/leakless/store"
)

// Flags are the settings every leakless program shares. Each flag's
// default comes from the environment variable named beside it.
type Flags struct {
	// DatabaseURL (-database-url, DATABASE_URL) is a PostgreSQL URL.
	DatabaseURL string
	// EC2Endpoint (-ec2-endpoint, EC2_ENDPOINT) is "aws" for AWS itself
	// through the default configuration chain, or the URL of an
	// EC2-compatible endpoint such as moto. A program may give "" a
	// meaning of its own (the examples start an embedded fake).
	EC2Endpoint string
	// Owner (-owner, OWNER) is the owner tag, KEY=VALUE: only instances
	// carrying it are ever listed or stopped.
	Owner string
	// RedriveGrace (-redrive-grace, REDRIVE_GRACE) is how long the
	// sweeper leaves a row alone after a DELETE marked it removed and is
	// stopping its instance itself.
	RedriveGrace time.Duration

	err error // a bad value in the environment, reported by Check
}

// Defaults are the values a program gives its flags when the environment
// leaves them unset.
type Defaults struct {
	EC2Endpoint string // "" unless the program says otherwise
	Owner       string // "" makes -owner required
	// EC2Usage describes -ec2-endpoint, for a program whose "" means
	// something; empty describes "aws" and URLs only.
	EC2Usage string
}

// Register defines the flags on fs, taking defaults from getenv and then
// from d.
func (f *Flags) Register(fs *flag.FlagSet, getenv func(string) string, d Defaults) {
	fs.StringVar(&f.DatabaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	usage := d.EC2Usage
	if usage == "" {
		usage = `EC2 endpoint (env EC2_ENDPOINT): "aws", or the URL of an EC2-compatible endpoint such as moto's`
	}
	fs.StringVar(&f.EC2Endpoint, "ec2-endpoint", Env(getenv, "EC2_ENDPOINT", d.EC2Endpoint), usage)
	fs.StringVar(&f.Owner, "owner", Env(getenv, "OWNER", d.Owner),
		"owner tag KEY=VALUE (env OWNER): only instances carrying it are listed or stopped")
	grace := store.DefaultRedriveGrace
	if v := getenv("REDRIVE_GRACE"); v != "" {
		if g, err := time.ParseDuration(v); err == nil {
			grace = g
		} else {
			f.err = fmt.Errorf("REDRIVE_GRACE: %w", err)
		}
	}
	fs.DurationVar(&f.RedriveGrace, "redrive-grace", grace,
		"after a DELETE marks a row removed, how long the sweeper leaves it to the DELETE's own stops (env REDRIVE_GRACE)")
}

// Check reports a bad value the environment gave a flag, or a negative
// redrive grace.
func (f *Flags) Check() error {
	if f.err != nil {
		return f.err
	}
	if f.RedriveGrace < 0 {
		return fmt.Errorf("-redrive-grace %v: must not be negative", f.RedriveGrace)
	}
	return nil
}

// OwnerTags parses Owner into the tag map the EC2 client filters by.
func (f *Flags) OwnerTags() (map[string]string, error) {
	return ParseOwner(f.Owner)
}

// ParseOwner parses an owner tag, KEY=VALUE, with neither part empty.
func ParseOwner(s string) (map[string]string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("owner tag %q is not KEY=VALUE", s)
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
