package bridge

// A redundant server set (non-transparent redundancy, OPC UA Part 4,
// 6.6.2): a server entry with several endpoints. The engine keeps a
// session to every member (members.go) and uses one, chosen by the pure
// rule below from each member's ServiceLevel.

// ServiceLevel sub-ranges (Part 4, 6.6.2.4.2).
const (
	// levelHealthyMin is the lowest ServiceLevel of the Healthy range
	// (200–255): the server delivers data as intended.
	levelHealthyMin = 200
	// levelDegradedMin is the lowest ServiceLevel of the Degraded range
	// (2–199); 0 is Maintenance and 1 NoData: never used.
	levelDegradedMin = 2
)

// memberView is what the selection rule knows of one member.
type memberView struct {
	// usable: its session is up and its ServiceLevel is known.
	usable bool
	level  int
}

// Reasons of a selection (logged and journaled with each switch).
const (
	whyKept     = "kept"
	whyFirst    = "first usable member"
	whyLost     = "member in use lost (session down)"
	whyLeft     = "member in use left the Healthy range"
	whyBetter   = "another member is better by the margin"
	whyNone     = "no usable member"
	whyUnusable = "member in use in Maintenance/NoData and no other usable"
	whyDegraded = "no Healthy member: best Degraded one"
)

// selectMember is the selection rule of a server set, a pure function.
// members are in configuration order, cur is the index of the member in
// use (-1: none), margin the ServiceLevel points another member must be
// better by to replace the member in use. It returns the member to use
// (-1: none, the set's flows are held) and why.
//
// The rule: use the member with the highest ServiceLevel in the Healthy
// range (200–255), ties to the first listed. The member in use is kept
// while it is Healthy unless another is better by at least margin points
// (and by at least one). Without a Healthy member, the best Degraded one
// (2–199), kept by the same rule; Maintenance (0) and NoData (1) are
// never used.
func selectMember(members []memberView, cur, margin int) (int, string) {
	best, bestLevel := -1, -1
	for i, m := range members {
		if m.usable && m.level > bestLevel { // strict: ties to the first listed
			best, bestLevel = i, m.level
		}
	}
	curUsable := cur >= 0 && cur < len(members) && members[cur].usable
	curLevel := -1
	if curUsable {
		curLevel = members[cur].level
	}
	better := bestLevel > curLevel && bestLevel-curLevel >= margin
	switch {
	case bestLevel < levelDegradedMin:
		switch {
		case cur < 0:
			return -1, whyNone
		case !curUsable:
			return -1, whyLost
		}
		return -1, whyUnusable
	case cur < 0:
		if bestLevel < levelHealthyMin {
			return best, whyDegraded
		}
		return best, whyFirst
	case !curUsable:
		return best, whyLost
	case curLevel >= levelHealthyMin:
		if better {
			return best, whyBetter
		}
		return cur, whyKept
	case bestLevel >= levelHealthyMin:
		return best, whyLeft
	case curLevel >= levelDegradedMin:
		// Degraded in use and nothing Healthy: the same keep rule.
		if better {
			return best, whyBetter
		}
		return cur, whyKept
	}
	return best, whyDegraded
}
