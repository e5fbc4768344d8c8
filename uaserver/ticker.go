package uaserver

import (
	"math"
	"time"

	"github.com/gopcua/opcua/ua"
)

// tickPeriod is the ticker's period; Rate is spread over it.
const tickPeriod = 10 * time.Millisecond

// runTicker changes variables round-robin over the first `changing`, at
// `rate` changes per second in total, every tickPeriod. A tick makes as
// many changes as are due since the start, so a late tick catches up;
// after a long stall at most 250 ms worth are made at once and the rest is
// skipped (Stats.Changes counts only changes made).
func (s *Server) runTicker(changing int, rate float64) {
	defer s.wg.Done()
	maxBurst := uint64(math.Max(1, rate/4))
	tk := time.NewTicker(tickPeriod)
	defer tk.Stop()
	start := time.Now()
	var done uint64
	counters := make([]uint64, changing)
	cursor := 0
	var batch []change
	for {
		select {
		case <-s.stop:
			return
		case now := <-tk.C:
			due := uint64(rate * now.Sub(start).Seconds())
			if due <= done {
				continue
			}
			k := min(due-done, maxBurst)
			done = due
			ts := s.Now()
			dvs := make([]ua.DataValue, k) // one allocation per tick
			batch = batch[:0]
			for j := range dvs {
				i := cursor
				if cursor++; cursor == changing {
					cursor = 0
				}
				counters[i]++
				v := &s.vars[i]
				dvs[j] = ua.DataValue{
					EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
					Value:           ua.MustVariant(valueFor(v.typ, i, counters[i])),
					SourceTimestamp: ts,
					ServerTimestamp: ts,
				}
				batch = append(batch, change{idx: i, key: v.key, dv: &dvs[j]})
			}
			s.notifyMu.Lock()
			for _, c := range batch {
				v := &s.vars[c.idx]
				if v.status != ua.StatusGood {
					withStatus(c.dv, v.status)
				}
				v.value.Store(c.dv)
			}
			s.fanOutLocked(batch)
			s.notifyMu.Unlock()
			s.changes.Add(k)
			clear(batch)
		}
	}
}
