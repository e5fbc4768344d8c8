package uaserver

import (
	"bytes"
	"io"
	"log"
	"sync"
)

// gopcua's server package prints through the standard library's global
// logger while it imports its nodeset (server.New: "New Node Set: …",
// "doing objects.", "doing root." and ~100 "can't find node" lines) and
// when it starts listening ("Started listening on …"). That output is
// noise on every server start, in tests and in the simserver command.
//
// quietStdLog runs f with the global logger's output wrapped in a filter
// that drops exactly those lines and passes every other line to the
// previous output unchanged, then restores the output. Calls are
// serialised (stdLogMu), so two servers starting at once cannot restore
// each other's filter.
var stdLogMu sync.Mutex

// gopcuaNoise are the prefixes of the lines gopcua prints at New and Start.
var gopcuaNoise = [][]byte{
	[]byte("New Node Set"),
	[]byte("doing "),
	[]byte("can't find node"),
	[]byte("Error loading node"),
	[]byte("Started listening on"),
}

func quietStdLog(f func()) {
	stdLogMu.Lock()
	defer stdLogMu.Unlock()
	prev, flags, prefix := log.Writer(), log.Flags(), log.Prefix()
	// The filter sees the message alone (no date, no prefix) and adds
	// them back for the lines it passes.
	log.SetOutput(&noiseFilter{out: log.New(prev, prefix, flags)})
	log.SetFlags(0)
	log.SetPrefix("")
	defer func() {
		log.SetOutput(prev)
		log.SetFlags(flags)
		log.SetPrefix(prefix)
	}()
	f()
}

// noiseFilter passes each line that is not gopcua's start-up noise to out.
type noiseFilter struct{ out *log.Logger }

func (n *noiseFilter) Write(p []byte) (int, error) {
	for _, pre := range gopcuaNoise {
		if bytes.HasPrefix(p, pre) {
			return len(p), nil
		}
	}
	if err := n.out.Output(2, string(bytes.TrimSuffix(p, []byte("\n")))); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = (*noiseFilter)(nil)
