package census_test

import (
	"slices"
	"testing"

	"github.com/leakless/leakless/internal/census"
	"github.com/leakless/leakless/teardown"
)

func TestLiveDropsDepartingAndRepeatedInstances(t *testing.T) {
	tag := map[string]string{"rid": "ws-1"}
	live, iids, rids := census.Live([]teardown.Instance{
		{ID: "i-1", State: "running", Tags: tag},
		{ID: "i-2", State: "stopped", Tags: tag},
		{ID: "i-1", State: "running", Tags: tag},
		{ID: "i-3", State: "shutting-down"},
		{ID: "i-4", State: "terminated"},
		{ID: "", State: "running"},
		{ID: "i-5", State: "pending"},
	}, "rid")
	if len(live) != 3 || !slices.Equal(iids, []string{"i-1", "i-2", "i-5"}) || !slices.Equal(rids, []string{"ws-1"}) {
		t.Errorf("Live = %d instances, %v, %v; want i-1, i-2, i-5 and ws-1 once", len(live), iids, rids)
	}
}
