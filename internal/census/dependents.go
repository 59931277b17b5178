package census

import (
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

// What a dependent's row says of it, as the dependents sweep judges it.
// RowRemoved and RowMissing are the sweep's candidates; their values are
// the "reason" of its events.
const (
	RowLive     = "row_live"     // its row is live and provisioning, or a live owned instance carries its row id
	RowStopping = "row_stopping" // its row is removed and holds an instance whose stop has not failed for good: the re-drive finishes it
	RowRemoved  = "row_removed"  // its row is removed
	RowMissing  = "row_missing"  // no row is live or removed under its id, and no live owned instance carries it
	RowUnknown  = "row_unknown"  // not removed, and without the instances a missing row cannot be told from a live one
)

// LiveRows returns the row ids that resourceTag names on the live
// instances of Live.
func LiveRows(live []teardown.Instance, resourceTag string) map[string]bool {
	rows := make(map[string]bool, len(live))
	for _, in := range live {
		if rid := in.Tags[resourceTag]; rid != "" {
			rows[rid] = true
		}
	}
	return rows
}

// DependentRow says what the row rid, named by a dependent's resource
// tag, makes of the dependent. known is the store's answer for rid;
// liveRows is LiveRows of the owned instances, nil when they were not
// listed.
func DependentRow(rid string, known store.Known, liveRows map[string]bool) string {
	switch {
	case known.Provisioning[rid], liveRows[rid]:
		return RowLive
	case known.Stopping[rid]:
		return RowStopping
	case known.Removed[rid]:
		return RowRemoved
	case liveRows != nil:
		return RowMissing
	}
	return RowUnknown
}
