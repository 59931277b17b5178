package leaklesstest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/census"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
)

// Option configures [RequireNoLeaks] with the guards the host gives its
// sweeper's sweeper.RowGone; each defaults as RowGone's does.
type Option func(*guards)

type guards struct {
	provisionTimeout time.Duration
	resourceTag      string
	keepTag          string
}

// WithProvisionTimeout sets how long after its launch an instance tagged
// with a live row that holds no instance yet counts as provisioning.
// Default sweeper.DefaultProvisionTimeout.
func WithProvisionTimeout(d time.Duration) Option { return func(g *guards) { g.provisionTimeout = d } }

// WithResourceTag sets the tag key holding an instance's row id. Default
// sweeper.DefaultResourceTag.
func WithResourceTag(key string) Option { return func(g *guards) { g.resourceTag = key } }

// WithKeepTag sets the tag key that keeps an instance. Default
// sweeper.DefaultKeepTag.
func WithKeepTag(key string) Option { return func(g *guards) { g.keepTag = key } }

// pendingLimit bounds how many pending rows RequireNoLeaks names.
const pendingLimit = 10000

// RequireNoLeaks fails t, naming each one, unless every live owned
// instance inv lists is explained: held by a live row, tagged with a live
// row that holds no instance yet and launched within the provision
// timeout, or carrying the keep tag; and unless no removed row still
// holds an instance. A removed row's instance counts even while the row
// is backing off or in its redrive grace: call it after the deletes under
// test and a sweep (sweeper.SweepOnce) have finished. When st reports
// store.Stats (Postgres and Memory do), pending rows Pending did not
// return are counted too. Listing or reading the store failing fails t.
func RequireNoLeaks(t testing.TB, st store.Store, inv teardown.Inventory, opts ...Option) {
	t.Helper()
	g := guards{provisionTimeout: sweeper.DefaultProvisionTimeout, resourceTag: sweeper.DefaultResourceTag, keepTag: sweeper.DefaultKeepTag}
	for _, o := range opts {
		o(&g)
	}
	leaks, err := findLeaks(t.Context(), st, inv, g)
	if err != nil {
		t.Fatalf("leaklesstest: %v", err)
		return
	}
	if len(leaks) > 0 {
		t.Fatalf("leaklesstest: %d leaks:\n\t%s", len(leaks), strings.Join(leaks, "\n\t"))
	}
}

// findLeaks lists the inventory first and reads the store second, as the
// sweeper does.
func findLeaks(ctx context.Context, st store.Store, inv teardown.Inventory, g guards) ([]string, error) {
	owned, err := inv.Owned(ctx)
	if err != nil {
		return nil, fmt.Errorf("list owned instances: %w", err)
	}
	live, iids, rids := census.Live(owned, g.resourceTag)
	known, err := st.Known(ctx, rids, iids)
	if err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	pending, err := st.Pending(ctx, pendingLimit)
	if err != nil {
		return nil, fmt.Errorf("read pending rows: %w", err)
	}
	var leaks []string
	named := map[string]bool{} // instances already named
	runningForRemoved := 0     // pending rows found by their instance's tag, not by Pending
	for _, p := range pending {
		named[p.InstanceID] = true
		leaks = append(leaks, fmt.Sprintf("row %q is removed and still holds %s", p.ResourceID, p.InstanceID))
	}
	for _, in := range live {
		rid := in.Tags[g.resourceTag]
		age := known.Now.Sub(in.LaunchedAt)
		switch {
		case named[in.ID]:
		case known.Held[in.ID] && rid != "" && known.Removed[rid]:
			runningForRemoved++
			leaks = append(leaks, fmt.Sprintf("%s is running for removed row %q", in.ID, rid))
		case known.Held[in.ID]:
		case hasTag(in, g.keepTag):
		case rid != "" && known.Provisioning[rid] && (in.LaunchedAt.IsZero() || age < g.provisionTimeout):
		case rid != "" && known.Provisioning[rid]:
			leaks = append(leaks, fmt.Sprintf("%s: live row %q has held no instance for %v, past the provision timeout %v", in.ID, rid, age.Round(time.Second), g.provisionTimeout))
		case rid != "" && known.Removed[rid]:
			leaks = append(leaks, fmt.Sprintf("%s: no row holds it; its row %q is removed", in.ID, rid))
		case rid != "":
			leaks = append(leaks, fmt.Sprintf("%s: no row holds it; its row %q does not exist or holds another instance", in.ID, rid))
		default:
			leaks = append(leaks, fmt.Sprintf("%s: no row holds it, and it has no %s tag", in.ID, g.resourceTag))
		}
	}
	if s, ok := st.(interface {
		Stats(context.Context) (store.Stats, error)
	}); ok {
		stats, err := s.Stats(ctx)
		if err != nil {
			return nil, fmt.Errorf("read store stats: %w", err)
		}
		if more := stats.Pending - len(pending) - runningForRemoved; more > 0 {
			leaks = append(leaks, fmt.Sprintf("%d more removed rows still hold an instance, backing off or in their redrive grace", more))
		}
	}
	slices.Sort(leaks)
	return leaks, nil
}

func hasTag(in teardown.Instance, key string) bool {
	_, ok := in.Tags[key]
	return ok
}
