package redundancy

// Held gates let a node run a second mirror beside the one that writes:
// the new mirror of a config change warms up (sessions, subscriptions,
// cache) behind a held gate, which permits nothing, while the old one
// keeps writing; the swap holds the old one's gate and releases the new
// one's. Both follow the node's gate otherwise (open, epoch, lease,
// replicated active), and each has its own Changed channel, so that two
// mirrors never take each other's signals.

// heldChild returns a new gate that follows g but permits nothing until
// release. Call drop when its mirror is gone.
func (g *Gate) heldChild() *Gate {
	c := &Gate{changed: make(chan struct{}, 1), self: g.self, parent: g, held: true}
	g.mu.Lock()
	if g.subs == nil {
		g.subs = map[*Gate]struct{}{}
	}
	g.subs[c] = struct{}{}
	g.mu.Unlock()
	return c
}

// heldPermit is Permit of a held gate: the parent's, unless held.
func (g *Gate) heldPermit() (uint64, bool) {
	epoch, ok := g.parent.Permit()
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	return epoch, ok && !held
}

// setHeld holds (true) or releases the gate and signals its mirror.
func (g *Gate) setHeld(held bool) {
	g.mu.Lock()
	g.held = held
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

// drop stops a held gate from following its parent.
func (g *Gate) drop() {
	if g == nil || g.parent == nil {
		return
	}
	g.parent.mu.Lock()
	delete(g.parent.subs, g)
	g.parent.mu.Unlock()
}

// signalHeld passes a change of g on to the held gates made from it.
func (g *Gate) signalHeld() {
	g.mu.Lock()
	subs := make([]*Gate, 0, len(g.subs))
	for c := range g.subs {
		subs = append(subs, c)
	}
	g.mu.Unlock()
	for _, c := range subs {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
}
