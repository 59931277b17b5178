package audit

import (
	"context"
	"testing"
	"time"

	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	known := store.Known{
		Now:          now,
		Held:         map[string]bool{"i-held": true, "i-due": true, "i-tagged-removed": true},
		Provisioning: map[string]bool{"ws-prov": true},
		Removed:      map[string]bool{"ws-removed": true},
	}
	removedHolds := map[string]bool{"i-due": true}
	cfg := &Config{MinAge: 10 * time.Minute, ProvisionTimeout: time.Hour, ResourceTag: "rid", KeepTag: "keep"}
	cases := []struct {
		name, id, rid string
		age           time.Duration
		keep          bool
		want          string
	}{
		{"a live row holds it", "i-held", "ws-1", 5 * time.Hour, false, Held},
		{"a due removed row holds it", "i-due", "", 5 * time.Hour, false, RemovedRunning},
		{"its tag names a removed row that holds it", "i-tagged-removed", "ws-removed", 5 * time.Hour, false, RemovedRunning},
		{"the keep tag keeps it", "i-kept", "", 5 * time.Hour, true, Kept},
		{"provisioning within the timeout", "i-p", "ws-prov", 30 * time.Minute, false, Provisioning},
		{"provisioning past the timeout", "i-p", "ws-prov", 2 * time.Hour, false, StuckProvisioning},
		{"its row is removed, however young", "i-r", "ws-removed", time.Minute, false, RowGone},
		{"no row, younger than MinAge", "i-y", "ws-none", time.Minute, false, Recent},
		{"no row, older than MinAge", "i-o", "ws-none", time.Hour, false, RowGone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := teardown.Instance{ID: c.id, LaunchedAt: now.Add(-c.age), Tags: map[string]string{}}
			if c.keep {
				in.Tags["keep"] = ""
			}
			if got := classify(in, c.rid, known, removedHolds, cfg); got != c.want {
				t.Errorf("classify = %s, want %s", got, c.want)
			}
		})
	}
}

func TestTakeWithoutItsSourcesIsAnError(t *testing.T) {
	if _, err := Take(context.Background(), Config{}); err == nil {
		t.Error("Take(Config{}): nil error, want one naming the required fields")
	}
}
