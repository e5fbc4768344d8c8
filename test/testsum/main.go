// Command testsum turns the `go test -json` stream of `make test` into
// what a person watching the run needs: one line per package as it
// finishes (and a line every 30 s naming what still runs), the full output
// of every failed test, then a list of every skipped test with the
// reason, and a closing line of its own:
//
//	123 passed, 0 failed, 4 skipped
//
// Lines on stdin that are not JSON (messages of the scripts around go
// test) are passed through. It exits 1 when a test or a package failed,
// or when no test ran at all.
//
// Usage:
//
//	{ go test -json ./...; bash .ci/fuzz.sh -json; } | go run ./test/testsum [-packages N]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	total := flag.Int("packages", 0, "how many packages the run has (for the progress lines; 0: count as they start)")
	flag.Parse()
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() { // owned by main: it ends at EOF, and main waits for that
		defer close(lines)
		r := bufio.NewReaderSize(os.Stdin, 1<<20)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				lines <- line
			}
			if err != nil {
				if err != io.EOF {
					readErr <- err
				}
				return
			}
		}
	}()
	s := newSummary(os.Stdout, time.Now)
	s.total = *total
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			s.line(line)
		case <-tick.C:
			s.heartbeat()
		}
	}
	select {
	case err := <-readErr:
		fmt.Fprintf(os.Stdout, "testsum: reading the test output: %v\n", err)
		s.finish()
		os.Exit(1)
	default:
	}
	if !s.finish() {
		os.Exit(1)
	}
}
