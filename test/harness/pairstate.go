package harness

import (
	"fmt"

	"github.com/uamirror/uamirror/redundancy"
)

// Brief describes a member's status in one line (role, readiness, epoch,
// the active, raft state, config, servers down, links): the "last seen"
// of a wait on the pair. Shared by test/pair and test/fault.
func Brief(st redundancy.Status) string {
	s := fmt.Sprintf("%s ready=%v epoch=%d active=%q raft=%s config=%.8s", st.Role, st.Ready, st.Epoch, st.Active, st.RaftState, st.ConfigHash)
	if st.Health != nil {
		for _, h := range st.Health.Servers {
			if !h.Up {
				s += " " + h.Name + "=DOWN"
			}
		}
		if st.Health.Reason != "" {
			s += " (" + st.Health.Reason + ")"
		}
	}
	for _, m := range st.Members {
		if m.Link != "self" {
			s += " " + m.ID + ":" + m.Link
		}
	}
	return s
}

// StablePair judges the statuses of nodes a and b: stable when one is
// active and writing, the other a READY standby that the active sees as
// READY, both agree on the epoch and the active, and both run config
// cfgHash. bActive says which is (or would be) the active; state describes
// both for a failure message.
func StablePair(sa, sb redundancy.Status, cfgHash string) (ok, bActive bool, epoch uint64, state string) {
	sAct, sSby := sa, sb
	if sb.Role == "active" {
		sAct, sSby, bActive = sb, sa, true
	}
	state = fmt.Sprintf("a: %s; b: %s; standby_ready=%v", Brief(sa), Brief(sb), sAct.StandbyReady)
	ok = sAct.Role == "active" && sSby.Role == "standby" && sAct.Ready && sSby.Ready && sAct.StandbyReady &&
		sAct.Epoch == sSby.Epoch && sAct.Active == sAct.Node && sSby.Active == sAct.Node &&
		sAct.ConfigHash == cfgHash && sSby.ConfigHash == cfgHash
	return ok, bActive, sAct.Epoch, state
}
