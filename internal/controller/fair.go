package controller

import (
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/policy"
)

// fairOrder orders pending specs (already in dispatch order) so that the
// cap is shared fairly between tenants, the top-level folders under jobs/
// (policy.TenantOf): each next slot goes to the tenant with the fewest
// jobs running or placed before it, ties to the tenant served longest ago
// (served: the launch count at each tenant's last launch), then to the
// tenant whose next spec comes first. Within a tenant the dispatch order
// stands, so priority orders a tenant's own specs and cannot starve
// another tenant's.
func fairOrder(pending []*intake.Entry, activeSpecs []string, served map[string]uint64) []*intake.Entry {
	load := map[string]uint64{}
	for _, k := range activeSpecs {
		load[policy.TenantOf(k)]++
	}
	queues := map[string][]*intake.Entry{}
	var tenants []string // in the order of their first spec
	for _, e := range pending {
		t := policy.TenantOf(e.Key)
		if _, ok := queues[t]; !ok {
			tenants = append(tenants, t)
		}
		queues[t] = append(queues[t], e)
	}
	if len(tenants) < 2 {
		return pending
	}
	// first[t] is the dispatch position of tenant t's next spec.
	pos := make(map[*intake.Entry]int, len(pending))
	for i, e := range pending {
		pos[e] = i
	}
	last := map[string]uint64{}
	var clock uint64
	for _, t := range tenants {
		last[t] = served[t]
		clock = max(clock, served[t])
	}
	out := make([]*intake.Entry, 0, len(pending))
	for len(out) < len(pending) {
		best := ""
		found := false
		for _, t := range tenants {
			q := queues[t]
			if len(q) == 0 {
				continue
			}
			if !found || before(load[t], last[t], pos[q[0]], load[best], last[best], pos[queues[best][0]]) {
				best, found = t, true
			}
		}
		out = append(out, queues[best][0])
		queues[best] = queues[best][1:]
		load[best]++
		clock++
		last[best] = clock
	}
	return out
}

// before compares two tenants by load, then last service, then position.
func before(load, last uint64, pos int, load2, last2 uint64, pos2 int) bool {
	if load != load2 {
		return load < load2
	}
	if last != last2 {
		return last < last2
	}
	return pos < pos2
}
