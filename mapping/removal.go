package mapping

import (
	"errors"
	"fmt"
)

// ErrLargeRemoval is wrapped by CheckRemoval's error: the new config
// removes every mapping, or more than the allowed share of them. The
// operator confirms such a change explicitly (`--confirm`); it is never
// applied by accident (a header-only CSV, an empty `mappings: []`).
var ErrLargeRemoval = errors.New("large removal of mappings")

// DefaultMaxRemoveShare is the share of the running mappings an apply may
// remove without confirmation.
const DefaultMaxRemoveShare = 0.5

// CheckRemoval reports whether going from old to new removes all of old's
// mappings (new has none while old had some) or more than maxShare of them
// (0 < maxShare ≤ 1; 0 or less means DefaultMaxRemoveShare). The error
// wraps ErrLargeRemoval and says how many would go. Either config may be
// nil (no mappings).
func CheckRemoval(old, new *Config, maxShare float64) error {
	if maxShare <= 0 {
		maxShare = DefaultMaxRemoveShare
	}
	nOld, nNew := 0, 0
	if old != nil {
		nOld = len(old.Mappings)
	}
	if new != nil {
		nNew = len(new.Mappings)
	}
	if nOld == 0 {
		return nil
	}
	if nNew == 0 {
		return fmt.Errorf("%w: the new config has no mappings: all %d running mappings would be removed", ErrLargeRemoval, nOld)
	}
	removed := len(Diff(old, new).Removed)
	if float64(removed) > maxShare*float64(nOld) {
		return fmt.Errorf("%w: %d of %d running mappings (%.0f %%) would be removed, more than the allowed %.0f %%",
			ErrLargeRemoval, removed, nOld, 100*float64(removed)/float64(nOld), 100*maxShare)
	}
	return nil
}
