package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string // build-output and build-fail
	Test       string
	Elapsed    float64
	Output     string
}

// pkg is what is known of one package of the run.
type pkg struct {
	name     string
	start    time.Time
	done     bool
	passed   int
	failed   int
	skipped  int
	running  map[string]time.Time // tests started and not ended
	tops     []string             // top-level tests run
	outputs  map[string]*strings.Builder
	pkgOut   strings.Builder // output outside any test
	failures []string        // names of failed tests, in order
}

// timed is a top-level test and the seconds it took.
type timed struct {
	name string
	secs float64
}

// skip is one skipped test.
type skip struct {
	pkg, test, reason string
}

// summary accumulates the run. It is used from one goroutine.
type summary struct {
	w        io.Writer
	now      func() time.Time
	started  time.Time
	lastOut  time.Time
	total    int // packages in the run, if known
	pkgs     map[string]*pkg
	order    []string
	build    map[string]*strings.Builder // build output by import path
	skips    []skip
	failed   []string // "pkg Test" or "pkg (why)", and the failure's last message lines
	slow     []timed  // top-level tests that ended, with their time
	noTests  []string
	passed   int
	nFailed  int
	nSkipped int
}

func newSummary(w io.Writer, now func() time.Time) *summary {
	t := now()
	return &summary{w: w, now: now, started: t, lastOut: t, pkgs: map[string]*pkg{}, build: map[string]*strings.Builder{}}
}

// modulePrefix is cut from package names in the progress lines.
const modulePrefix = "github.com/uamirror/uamirror/"

func short(p string) string {
	if s := strings.TrimPrefix(p, modulePrefix); s != "" {
		return s
	}
	return p
}

func (s *summary) printf(format string, args ...any) {
	fmt.Fprintf(s.w, format, args...)
	s.lastOut = s.now()
}

// line handles one line of input.
func (s *summary) line(l string) {
	var ev event
	if !strings.HasPrefix(l, "{") || json.Unmarshal([]byte(l), &ev) != nil || ev.Action == "" {
		s.printf("%s", l)
		if !strings.HasSuffix(l, "\n") {
			s.printf("\n")
		}
		return
	}
	s.event(ev)
}

func (s *summary) pkg(name string) *pkg {
	p := s.pkgs[name]
	if p == nil {
		p = &pkg{name: name, start: s.now(), running: map[string]time.Time{}, outputs: map[string]*strings.Builder{}}
		s.pkgs[name] = p
		s.order = append(s.order, name)
	}
	return p
}

// event handles one test2json event.
func (s *summary) event(ev event) {
	switch ev.Action {
	case "build-output":
		// "x/p [x/p.test]": the package x/p's test build.
		path, _, _ := strings.Cut(ev.ImportPath, " ")
		b := s.build[path]
		if b == nil {
			b = &strings.Builder{}
			s.build[path] = b
		}
		b.WriteString(ev.Output)
		return
	case "build-fail":
		return // reported with the package's fail
	}
	if ev.Package == "" {
		return
	}
	p := s.pkg(ev.Package)
	if ev.Test == "" {
		switch ev.Action {
		case "start": // also again, for each fuzz target of a package
			p.start, p.done = s.now(), false
		case "output":
			p.pkgOut.WriteString(ev.Output)
		case "pass", "fail", "skip":
			s.pkgDone(p, ev)
		}
		return
	}
	switch ev.Action {
	case "run":
		p.running[ev.Test] = s.now()
		if !strings.Contains(ev.Test, "/") {
			p.tops = append(p.tops, ev.Test)
		}
	case "output":
		b := p.outputs[ev.Test]
		if b == nil {
			b = &strings.Builder{}
			p.outputs[ev.Test] = b
		}
		if b.Len() < 1<<20 {
			b.WriteString(ev.Output)
		}
	case "pass":
		s.timed(p, ev)
		delete(p.running, ev.Test)
		delete(p.outputs, ev.Test)
		p.passed++
		s.passed++
	case "fail":
		s.timed(p, ev)
		delete(p.running, ev.Test)
		p.failed++
		s.nFailed++
		p.failures = append(p.failures, ev.Test)
		s.failed = append(s.failed, short(p.name)+" "+ev.Test+failReason(p.outputs[ev.Test]))
	case "skip":
		delete(p.running, ev.Test)
		p.skipped++
		s.nSkipped++
		s.skips = append(s.skips, skip{short(p.name), ev.Test, skipReason(p.outputs[ev.Test])})
		delete(p.outputs, ev.Test)
	}
}

// timed records a top-level test's time (not a fuzz target's).
func (s *summary) timed(p *pkg, ev event) {
	if !strings.Contains(ev.Test, "/") && !strings.HasPrefix(ev.Test, "Fuzz") {
		s.slow = append(s.slow, timed{short(p.name) + " " + ev.Test, ev.Elapsed})
	}
}

// pkgDone prints the package's line and, on failure, the output of its
// failed tests (or of the package, when no test failed).
func (s *summary) pkgDone(p *pkg, ev event) {
	p.done = true
	if ev.Action == "skip" || strings.Contains(p.pkgOut.String(), "[no test files]") && p.passed+p.failed+p.skipped == 0 {
		s.noTests = append(s.noTests, short(p.name))
		p.pkgOut.Reset()
		return
	}
	counts := fmt.Sprintf("%d passed", p.passed)
	if p.failed > 0 {
		counts += fmt.Sprintf(", %d failed", p.failed)
	}
	if p.skipped > 0 {
		counts += fmt.Sprintf(", %d skipped", p.skipped)
	}
	status := "ok  "
	if ev.Action == "fail" {
		status = "FAIL"
	}
	label := short(p.name)
	if len(p.tops) == 1 && strings.HasPrefix(p.tops[0], "Fuzz") {
		label += " " + p.tops[0] // a fuzzing run (fuzz.sh)
	}
	s.printf("%s  %-28s %7.1fs  %s\n", status, label, ev.Elapsed, counts)
	if ev.Action == "fail" {
		for _, t := range p.failures {
			s.printf("---- %s %s:\n%s", short(p.name), t, indent(p.outputs[t]))
		}
		if p.failed == 0 {
			why := "the package failed outside any test"
			out := p.pkgOut.String()
			if b := s.build[p.name]; b != nil && b.Len() > 0 {
				why, out = "build failed", b.String()+out
			}
			s.nFailed++
			s.failed = append(s.failed, short(p.name)+" ("+why+")")
			s.printf("---- %s: %s:\n%s", short(p.name), why, indent(tail(out, 60)))
		}
	}
	// The package may run again (a fuzz target): start afresh.
	p.passed, p.failed, p.skipped = 0, 0, 0
	p.failures, p.tops = nil, nil
	p.outputs = map[string]*strings.Builder{}
	p.running = map[string]time.Time{}
	p.pkgOut.Reset()
}

// heartbeat prints, after 30 s without output, what is still running.
func (s *summary) heartbeat() {
	now := s.now()
	if now.Sub(s.lastOut) < 30*time.Second {
		return
	}
	done, total := 0, max(s.total, len(s.order))
	var running []string
	for _, name := range s.order {
		p := s.pkgs[name]
		if p.done {
			done++
			continue
		}
		what := short(name)
		var longest string
		var since time.Time
		for t, at := range p.running {
			if !strings.Contains(t, "/") && (longest == "" || at.Before(since)) {
				longest, since = t, at
			}
		}
		if longest != "" {
			what += fmt.Sprintf(" (%s %s)", longest, now.Sub(since).Round(time.Second))
		}
		running = append(running, what)
	}
	msg := "compiling (-race; the first packages finish after 1–4 min on 2 cores)"
	if len(running) > 0 {
		msg = "running: " + strings.Join(running, ", ")
	}
	s.printf("… %s elapsed, %d/%d packages done; %s\n", now.Sub(s.started).Round(time.Second), done, total, msg)
}

// finish prints the failures, the skipped tests with their reasons and the
// closing line; it reports whether the run passed.
func (s *summary) finish() bool {
	// Packages that never ended (the stream was cut: go test was killed).
	for _, name := range s.order {
		p := s.pkgs[name]
		if !p.done {
			s.nFailed++
			s.failed = append(s.failed, short(name)+" (did not finish)")
		}
	}
	if len(s.noTests) > 0 {
		sort.Strings(s.noTests)
		s.printf("\nno test files: %s\n", strings.Join(s.noTests, ", "))
	}
	if len(s.skips) > 0 {
		s.printf("\nskipped (%d), by reason:\n", len(s.skips))
		type group struct {
			key   string
			tests []string
		}
		var groups []*group
		byKey := map[string]*group{}
		for _, sk := range s.skips {
			key := sk.pkg + ": " + sk.reason
			g := byKey[key]
			if g == nil {
				g = &group{key: key}
				byKey[key] = g
				groups = append(groups, g)
			}
			g.tests = append(g.tests, sk.test)
		}
		for _, g := range groups {
			s.printf("  %s\n      %s\n", g.key, strings.Join(g.tests, ", "))
		}
	}
	if len(s.failed) > 0 {
		s.printf("\nfailed (%d):\n", len(s.failed))
		for _, f := range s.failed {
			s.printf("  %s\n", f)
		}
	}
	if len(s.slow) > 0 {
		sort.SliceStable(s.slow, func(i, j int) bool { return s.slow[i].secs > s.slow[j].secs })
		s.printf("\nslowest tests:")
		for i, t := range s.slow[:min(12, len(s.slow))] {
			if i%3 == 0 {
				s.printf("\n ")
			}
			s.printf(" %s %.0fs;", t.name, t.secs)
		}
		s.printf("\n")
	}
	s.printf("\ntook %s\n", s.now().Sub(s.started).Round(time.Second))
	// The closing line, alone, in the form CI reads.
	s.printf("%d passed, %d failed, %d skipped\n", s.passed, s.nFailed, s.nSkipped)
	if s.passed+s.nFailed+s.nSkipped == 0 {
		s.printf("testsum: no test ran\n")
		return false
	}
	return s.nFailed == 0
}

// location is the file:line prefix testing puts before t.Log and t.Skip
// text.
var location = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

// skipReason is the text of a skipped test's output without the run and
// skip markers and the file:line, on one line.
func skipReason(out *strings.Builder) string {
	if out == nil {
		return "(no reason given)"
	}
	var parts []string
	for _, l := range strings.Split(out.String(), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, strings.TrimSpace(location.ReplaceAllString(l, "")))
	}
	r := strings.Join(parts, " / ")
	if r == "" {
		return "(no reason given)"
	}
	if len(r) > 300 {
		r = r[:300] + "…"
	}
	return r
}

// failReason is the last two file:line lines of a failed test's output
// that are not log lines of a logger (zap's logger.go): usually the
// t.Fatal or t.Error that failed it, for the closing list, so that a
// cut-off CI log still says why. Each on its own indented line.
func failReason(out *strings.Builder) string {
	if out == nil {
		return ""
	}
	var last []string
	for _, l := range strings.Split(out.String(), "\n") {
		if !location.MatchString(l) || strings.Contains(l, "logger.go:") {
			continue
		}
		l = strings.TrimSpace(l)
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		last = append(last, l)
		if len(last) > 2 {
			last = last[1:]
		}
	}
	var b strings.Builder
	for _, l := range last {
		b.WriteString("\n      " + l)
	}
	return b.String()
}

func indent(b *strings.Builder) string {
	if b == nil {
		return "    (no output)\n"
	}
	return indentString(b.String())
}

func indentString(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)\n"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// tail returns the last n lines of s.
func tail(s string, n int) *strings.Builder {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	b.WriteString(strings.Join(lines, "\n"))
	return &b
}
