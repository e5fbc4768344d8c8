package main

// A minimal Chrome DevTools Protocol client for the status page test:
// it starts headless Chromium, speaks the protocol over a WebSocket of
// its own (RFC 6455, client side only: the module has no WebSocket
// package and this needs little of one), evaluates expressions and
// clicks with real mouse events.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/harness"
)

// chromiumPath is the browser the page test drives (Debian package
// chromium).
const chromiumPath = "/usr/bin/chromium"

// needChromium skips the test when Chromium is missing, unless CI is set:
// there its absence is a broken build machine, not a reason to skip.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing and CI is set: install it (make deps: apt-get install chromium)", chromiumPath)
		}
		t.Skipf("%s missing (apt-get install chromium, or `make deps`); skipping the browser test", chromiumPath)
	}
}

// chrome is a headless Chromium process and a CDP session to one page.
type chrome struct {
	t    *testing.T
	cmd  *exec.Cmd
	page *cdpConn
}

// startBrowser starts headless Chromium with a debugging port and
// connects to its first page. Cleanup closes the session and kills the
// browser.
func startBrowser(t *testing.T) *chrome {
	t.Helper()
	// Everything the browser writes stays in the test's temp dir: its
	// profile, and its own temp files (the org.chromium.Chromium.*
	// singleton directory, shared memory files) through TMPDIR and HOME.
	dir := t.TempDir()
	for _, d := range []string{"profile", "tmp", "home"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+filepath.Join(dir, "profile"), "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--window-size=1400,1000", "about:blank")
	cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(dir, "tmp"), "HOME="+filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "home", ".config"), "XDG_CACHE_HOME="+filepath.Join(dir, "home", ".cache"))
	// Its own process group, so that the cleanup ends the renderer and
	// zygote processes too before the temp dir is removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &chrome{t: t, cmd: cmd}
	// The browser announces its DevTools endpoint on stderr; keep
	// draining stderr afterwards so it never blocks on a full pipe.
	wsCh := make(chan string, 1)
	var tail lockedTail
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		re := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			tail.add(sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case wsCh <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		if b.page != nil {
			b.page.close()
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		<-drained
		// The group's other processes are not our children: wait until
		// they are gone, so none writes into the temp dir while the
		// testing package removes it.
		if !harness.WaitFor(10*time.Second, func() bool {
			return errors.Is(syscall.Kill(-cmd.Process.Pid, 0), syscall.ESRCH)
		}) {
			t.Errorf("chromium processes of group %d still alive 10s after SIGKILL", cmd.Process.Pid)
		}
	})
	var wsURL string
	select {
	case wsURL = <-wsCh:
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium did not announce its DevTools endpoint in 30s:\n%s", tail.String())
	}
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	// Find the page target (about:blank) and connect to it.
	var pageWS string
	found := harness.WaitFor(15*time.Second, func() bool {
		var targets []struct {
			Type string `json:"type"`
			WS   string `json:"webSocketDebuggerUrl"`
		}
		if err := httpJSON("http://"+u.Host+"/json/list", &targets); err != nil {
			return false
		}
		for _, tg := range targets {
			if tg.Type == "page" && tg.WS != "" {
				pageWS = tg.WS
				return true
			}
		}
		return false
	})
	if !found {
		t.Fatalf("no page target in chromium:\n%s", tail.String())
	}
	b.page, err = dialCDP(pageWS)
	if err != nil {
		t.Fatalf("DevTools session: %v", err)
	}
	return b
}

func httpJSON(u string, out any) error {
	c := &http.Client{Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	res, err := c.Get(u)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(out)
}

// navigate opens u in the page.
func (b *chrome) navigate(u string) {
	b.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.page.call("Page.navigate", map[string]any{"url": u}, &res); err != nil || res.ErrorText != "" {
		b.t.Fatalf("navigate %s: %v %s", u, err, res.ErrorText)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its
// (JSON-serialisable) value into out.
func (b *chrome) eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := b.page.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("%s: %s %s", expr, res.Exception.Text, res.Exception.Exception.Description)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// text returns the text content of the first element matching sel ("" if none).
func (b *chrome) text(sel string) string {
	var s string
	q, _ := json.Marshal(sel)
	if err := b.eval(fmt.Sprintf(`(document.querySelector(%s) || {}).innerText || ""`, q), &s); err != nil {
		b.t.Fatalf("text %s: %v", sel, err)
	}
	return s
}

// click clicks the centre of the element matching sel with real mouse
// events (pressed, released), as a user would.
func (b *chrome) click(sel string) {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	var pt *struct{ X, Y float64 }
	err := b.eval(fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (!e || e.offsetParent === null || e.disabled) return null;
		e.scrollIntoView({block: "center"});
		const r = e.getBoundingClientRect();
		return {X: r.left + r.width / 2, Y: r.top + r.height / 2};
	})()`, q), &pt)
	if err != nil || pt == nil {
		b.t.Fatalf("click %s: not visible or not enabled (%v)", sel, err)
	}
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		p := map[string]any{"type": typ, "x": pt.X, "y": pt.Y}
		if typ != "mouseMoved" {
			p["button"], p["clickCount"] = "left", 1
		}
		if err := b.page.call("Input.dispatchMouseEvent", p, nil); err != nil {
			b.t.Fatalf("click %s: %s: %v", sel, typ, err)
		}
	}
}

// screenshot saves a PNG of the page to path.
func (b *chrome) screenshot(path string) error {
	var res struct {
		Data []byte `json:"data"` // base64 in JSON: decoded by encoding/json
	}
	if err := b.page.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &res); err != nil {
		return err
	}
	return os.WriteFile(path, res.Data, 0o644)
}

// lockedTail keeps the last lines of a child's output for error messages.
type lockedTail struct {
	mu    sync.Mutex
	lines []string
}

func (l *lockedTail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 40 {
		l.lines = l.lines[1:]
	}
}

func (l *lockedTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// cdpConn is one DevTools session over a WebSocket. call may be used
// from several goroutines; one reader goroutine, owned by the conn and
// waited for by close, routes answers by id and drops events.
type cdpConn struct {
	c    net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
	mu   sync.Mutex
	next int64
	wait map[int64]chan cdpAnswer
	err  error // set when the reader stops
	done chan struct{}
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// dialCDP opens a WebSocket to a DevTools URL (ws://host:port/…).
func dialCDP(wsURL string) (*cdpConn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", u.RequestURI(), u.Host, k)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %s", res.Status)
	}
	_ = c.SetDeadline(time.Time{})
	cc := &cdpConn{c: c, br: br, wait: map[int64]chan cdpAnswer{}, done: make(chan struct{})}
	go cc.readLoop()
	return cc, nil
}

// call sends one command and waits (up to 30 s) for its answer.
func (c *cdpConn) call(method string, params any, out any) error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.next++
	id := c.next
	ch := make(chan cdpAnswer, 1)
	c.wait[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.wait, id)
		c.mu.Unlock()
	}()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return err
	}
	if err := c.writeFrame(0x1, msg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case a := <-ch:
		if a.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, a.Error.Message, a.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(a.Result, out)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("%s: connection closed: %w", method, c.err)
	case <-ctx.Done():
		return fmt.Errorf("%s: no answer: %w", method, ctx.Err())
	}
}

func (c *cdpConn) close() {
	_ = c.writeFrame(0x8, nil)
	_ = c.c.Close()
	<-c.done
}

// writeFrame sends one final, masked frame (clients must mask).
func (c *cdpConn) writeFrame(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	hdr := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	buf := make([]byte, len(payload))
	for i, b := range payload {
		buf[i] = b ^ mask[i%4]
	}
	_, err := c.c.Write(append(hdr, buf...))
	return err
}

// readFrame reads one frame: fin bit, opcode, payload.
func (c *cdpConn) readFrame() (bool, byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return false, 0, nil, err
	}
	fin, op, masked := h[0]&0x80 != 0, h[0]&0x0f, h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 256<<20 {
		return false, 0, nil, fmt.Errorf("websocket frame of %d bytes", n)
	}
	var mask [4]byte
	if masked {
		if _, err := io.ReadFull(c.br, mask[:]); err != nil {
			return false, 0, nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return false, 0, nil, err
	}
	if masked {
		for i := range p {
			p[i] ^= mask[i%4]
		}
	}
	return fin, op, p, nil
}

func (c *cdpConn) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	}()
	var msg []byte
	for {
		var fin bool
		var op byte
		var p []byte
		fin, op, p, err = c.readFrame()
		if err != nil {
			return
		}
		switch op {
		case 0x1, 0x2:
			msg = p
		case 0x0:
			msg = append(msg, p...)
		case 0x8:
			err = errors.New("closed by the browser")
			return
		case 0x9:
			if err = c.writeFrame(0xA, p); err != nil {
				return
			}
			continue
		default:
			continue
		}
		if !fin {
			continue
		}
		var a struct {
			ID int64 `json:"id"`
			cdpAnswer
		}
		if json.Unmarshal(msg, &a) != nil || a.ID == 0 {
			continue // an event
		}
		c.mu.Lock()
		ch := c.wait[a.ID]
		c.mu.Unlock()
		if ch != nil {
			ch <- a.cdpAnswer
		}
	}
}
