package workspaces

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
)

// The statuses a workspace row goes through.
const (
	// StatusProvisioning: the row is written and its instance is being launched.
	StatusProvisioning = "provisioning"
	// StatusRunning: the row holds its running instance.
	StatusRunning = "running"
	// StatusRemoved: the workspace is deleted; the row keeps its instance id
	// until the instance is known to be stopped.
	StatusRemoved = "removed"
)

// DefaultResourceTag is the tag key that carries a workspace's id on its
// instance: the key the sweeper's row-gone reaping reads by default.
const DefaultResourceTag = sweeper.DefaultResourceTag

// Defaults for the launch parameters and request deadlines in [Config].
const (
	DefaultImageID       = "ami-0123456789abcdef0"
	DefaultInstanceType  = "t3.micro"
	DefaultLaunchTimeout = 30 * time.Second
	DefaultDeleteTimeout = 60 * time.Second
)

// Table describes the workspaces table to the store and sweeper packages.
var Table = store.Table{
	Name:       "workspaces",
	ID:         "id",
	Status:     "status",
	InstanceID: "instance_id",
	Parent:     "parent_id",
	Removed:    StatusRemoved,
	Location:   "region",
}

// Workspace is one row of the workspaces table, as the API shows it.
type Workspace struct {
	ID         string    `json:"id"`
	ParentID   string    `json:"parent_id,omitempty"`
	Status     string    `json:"status"`
	InstanceID string    `json:"instance_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// Launcher starts instances. *ec2.Client implements it; give it the SDK's
// ordinary retries, which are safe here because every launch carries the
// row id as its ClientToken.
type Launcher interface {
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
}

// Ledger reads back the events a [events.Sink] wrote. *events.Postgres
// implements it; [MemoryEvents] is the in-memory one.
type Ledger interface {
	List(ctx context.Context, f events.Filter) ([]events.Event, error)
}

// Config is everything the API needs. Store, Rows, Events, Ledger, EC2,
// Stopper and Owner are required; the rest have defaults.
type Config struct {
	// Store is the library's view of the workspaces table: RemoveTree and Reaped.
	Store store.Store
	// Rows is the API's own access to the table: insert, record, read.
	Rows Rows
	// Events receives a durable event for every stop that gives up.
	Events events.Sink
	// Ledger lists the events for GET /events.
	Ledger Ledger
	// EC2 launches instances.
	EC2 Launcher
	// Stopper stops instances; an *awsec2.Client, which also batches.
	Stopper teardown.Stopper
	// Owner is the set of tags (key → value) that marks an instance as this
	// deployment's. Every launch carries them.
	Owner map[string]string
	// ResourceTag is the tag key that carries the row id on its instance.
	// The default is DefaultResourceTag.
	ResourceTag string
	// ImageID and InstanceType are the launch parameters.
	ImageID, InstanceType string
	// Retry configures teardown.StopAll on DELETE. WithOnExhausted is added
	// by the API; any given here is replaced.
	Retry []teardown.Option
	// LaunchTimeout bounds a POST's launch and record; DeleteTimeout bounds
	// a DELETE's stops. Both run detached from the request's cancellation,
	// so a client that hangs up does not leave the work half done.
	LaunchTimeout, DeleteTimeout time.Duration
	// Logger receives one line per failure. The default discards.
	Logger *slog.Logger
	// NewID returns a fresh row id (a lower-case UUID). The default is
	// NewID; tests replace it.
	NewID func() string
}

// ErrConfig is wrapped by the error New returns for a missing dependency.
var ErrConfig = errors.New("workspaces: invalid configuration")

// New returns the workspace API:
//
//	POST   /workspaces          {"parent_id": "..."} (optional) → 201 and the workspace
//	GET    /workspaces/{id}     → 200 and the workspace
//	DELETE /workspaces/{id}     → 204, or 500 naming the instances still held
//	GET    /events?type=&subject=&limit= → the leak ledger, newest first
//
// Errors are JSON objects with an "error" field. A rejected request writes
// nothing.
func New(cfg Config) (http.Handler, error) {
	switch {
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: Store is nil", ErrConfig)
	case cfg.Rows == nil:
		return nil, fmt.Errorf("%w: Rows is nil", ErrConfig)
	case cfg.Events == nil:
		return nil, fmt.Errorf("%w: Events is nil", ErrConfig)
	case cfg.Ledger == nil:
		return nil, fmt.Errorf("%w: Ledger is nil", ErrConfig)
	case cfg.EC2 == nil:
		return nil, fmt.Errorf("%w: EC2 is nil", ErrConfig)
	case cfg.Stopper == nil:
		return nil, fmt.Errorf("%w: Stopper is nil", ErrConfig)
	case len(cfg.Owner) == 0:
		return nil, fmt.Errorf("%w: Owner has no tags", ErrConfig)
	case cfg.LaunchTimeout < 0 || cfg.DeleteTimeout < 0:
		return nil, fmt.Errorf("%w: negative timeout", ErrConfig)
	}
	for k, v := range cfg.Owner {
		if k == "" || v == "" {
			return nil, fmt.Errorf("%w: owner tag %q=%q has an empty key or value", ErrConfig, k, v)
		}
	}
	if cfg.ResourceTag == "" {
		cfg.ResourceTag = DefaultResourceTag
	}
	if _, clash := cfg.Owner[cfg.ResourceTag]; clash {
		return nil, fmt.Errorf("%w: resource tag %q is also an owner tag", ErrConfig, cfg.ResourceTag)
	}
	if cfg.ImageID == "" {
		cfg.ImageID = DefaultImageID
	}
	if cfg.InstanceType == "" {
		cfg.InstanceType = DefaultInstanceType
	}
	if cfg.LaunchTimeout == 0 {
		cfg.LaunchTimeout = DefaultLaunchTimeout
	}
	if cfg.DeleteTimeout == 0 {
		cfg.DeleteTimeout = DefaultDeleteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NewID == nil {
		cfg.NewID = NewID
	}
	owner := make(map[string]string, len(cfg.Owner))
	for k, v := range cfg.Owner {
		owner[k] = v
	}
	cfg.Owner = owner
	cfg.Retry = append(append([]teardown.Option(nil), cfg.Retry...),
		teardown.WithOnExhausted(events.Exhausted(events.BestEffort(cfg.Events, cfg.Logger), events.TypeRetryExhausted)))

	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /workspaces", a.create)
	mux.HandleFunc("GET /workspaces/{id}", a.get)
	mux.HandleFunc("DELETE /workspaces/{id}", a.remove)
	mux.HandleFunc("GET /events", a.events)
	return mux, nil
}
