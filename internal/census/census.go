// Package census takes the first step every reading of an inventory
// against the host table shares: the live owned instances, each once,
// and the ids to ask the store about.
package census

import "github.com/leakless/leakless/teardown"

// Live returns the instances of owned that are not on their way out
// (shutting-down, terminated), each once (an inventory that pages may
// list one twice), with their instance ids and the distinct row ids
// their resourceTag names.
func Live(owned []teardown.Instance, resourceTag string) (live []teardown.Instance, instanceIDs, resourceIDs []string) {
	seen := map[string]bool{}
	rows := map[string]bool{}
	for _, in := range owned {
		if in.ID == "" || seen[in.ID] || in.State == "shutting-down" || in.State == "terminated" {
			continue
		}
		seen[in.ID] = true
		live = append(live, in)
		instanceIDs = append(instanceIDs, in.ID)
		if rid := in.Tags[resourceTag]; rid != "" && !rows[rid] {
			rows[rid] = true
			resourceIDs = append(resourceIDs, rid)
		}
	}
	return live, instanceIDs, resourceIDs
}
