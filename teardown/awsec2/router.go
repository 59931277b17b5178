package awsec2

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/leakless/leakless/teardown"
)

// ErrUnknownLocation is wrapped by the error [Router.At] returns for a
// location the router has no client for.
var ErrUnknownLocation = errors.New("awsec2: unknown location")

// Router holds one [Client] per location: a region ("us-east-1"), an
// account and region ("123456789012/us-east-1"), or "" for the single
// default. EC2 meters its API per account and region, so each location's
// Client keeps its own rate limiters: a throttled or busy location never
// slows another, and locations drain in parallel. An id is only ever sent
// to the Client of the location asked for; the Router never guesses where
// an instance lives. It is safe for concurrent use.
type Router struct {
	clients   map[string]*Client
	locations []string // sorted
}

// NewRouter returns a Router over clients, keyed by location. Each
// location needs a Client of its own (built with [New] on an EC2 client
// for that account and region), so that each has its own buckets: an empty
// map, a nil Client, one Client under two locations, or a location that is
// neither "", "region" nor "account/region" (no empty part, no space) is an
// error wrapping teardown.ErrConfig.
func NewRouter(clients map[string]*Client) (*Router, error) {
	if len(clients) == 0 {
		return nil, fmt.Errorf("awsec2: NewRouter needs at least one location: %w", teardown.ErrConfig)
	}
	seen := make(map[*Client]string, len(clients))
	locations := slices.Sorted(maps.Keys(clients))
	for _, loc := range locations {
		c := clients[loc]
		if err := validLocation(loc); err != nil {
			return nil, err
		}
		if c == nil {
			return nil, fmt.Errorf("awsec2: location %q: nil Client: %w", loc, teardown.ErrConfig)
		}
		if other, dup := seen[c]; dup {
			return nil, fmt.Errorf("awsec2: locations %q and %q share one Client, and so one set of rate limiters: give each its own: %w", other, loc, teardown.ErrConfig)
		}
		seen[c] = loc
	}
	return &Router{clients: maps.Clone(clients), locations: locations}, nil
}

// validLocation accepts "", "region" and "account/region".
func validLocation(loc string) error {
	if loc == "" {
		return nil
	}
	parts := strings.Split(loc, "/")
	bad := len(parts) > 2 || strings.ContainsFunc(loc, func(r rune) bool { return r <= ' ' || r == 0x7f })
	for _, p := range parts {
		bad = bad || p == ""
	}
	if bad {
		return fmt.Errorf(`awsec2: location %q: want "region" or "account/region": %w`, loc, teardown.ErrConfig)
	}
	return nil
}

// At returns the Client of location, a teardown.Stopper, BatchStopper,
// Inventory and Describer for that account and region alone. A location
// the router was not built with is an error wrapping [ErrUnknownLocation].
func (r *Router) At(location string) (*Client, error) {
	c, ok := r.clients[location]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %q)", ErrUnknownLocation, location, r.locations)
	}
	return c, nil
}

// Locations returns the router's locations, sorted. The slice is the
// caller's.
func (r *Router) Locations() []string { return slices.Clone(r.locations) }

// Owned lists the owned instances of every location, as [Client.Owned]
// does for each, every location at once (each waits only for its own
// describe bucket). Each instance's Location says where it lives; the
// result is ordered by location, then as each location listed it. When any
// location fails, Owned returns no instances and an error naming every
// location that failed: a partial list is not the deployment's.
func (r *Router) Owned(ctx context.Context) ([]teardown.Instance, error) {
	lists := make([][]teardown.Instance, len(r.locations))
	errs := make([]error, len(r.locations))
	var wg sync.WaitGroup
	for i, loc := range r.locations {
		wg.Go(func() {
			list, err := r.clients[loc].Owned(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("location %q: %w", loc, err)
				return
			}
			for j := range list {
				list[j].Location = loc
			}
			lists[i] = list
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.Concat(lists...), nil
}

var _ teardown.Inventory = (*Router)(nil)
