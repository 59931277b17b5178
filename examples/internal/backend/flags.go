package backend

import (
	"context"
	"flag"
	"fmt"

	"github.com/leakless/leakless/internal/deployment"
	"github.com/leakless/leakless/store"
)

// DefaultOwnerTag is the owner tag the example programs put on every
// instance they launch, and the only instances they will ever stop.
const DefaultOwnerTag = "leakless:owner=workspaces-example"

// Flags are the settings every example program shares, as cmd/leakless
// reads them: see [deployment.Flags]. An empty -ec2-endpoint starts an
// embedded fake EC2.
type Flags struct {
	deployment.Flags
}

// Register defines the flags on fs, taking defaults from getenv.
func (f *Flags) Register(fs *flag.FlagSet, getenv func(string) string) {
	f.Flags.Register(fs, getenv, deployment.Defaults{
		Owner:    DefaultOwnerTag,
		EC2Usage: `EC2 endpoint (env EC2_ENDPOINT): empty for an embedded fake EC2, a URL such as moto's, or "aws"`,
	})
}

// Env returns getenv(key), or def when it is empty.
func Env(getenv func(string) string, key, def string) string { return deployment.Env(getenv, key, def) }

// Open parses the owner tag and opens the database and EC2 the flags name,
// closing whatever it opened when a later step fails. The caller closes
// both when done. An empty database URL keeps everything in memory.
func (f *Flags) Open(ctx context.Context) (owner map[string]string, db *Database, cloud *EC2, err error) {
	if err := f.Check(); err != nil {
		return nil, nil, nil, fmt.Errorf("backend: %w", err)
	}
	if owner, err = f.OwnerTags(); err != nil {
		return nil, nil, nil, fmt.Errorf("backend: %w", err)
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
