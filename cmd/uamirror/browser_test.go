package main

// The browser of the status page test: headless Chromium driven through
// the Chrome DevTools Protocol by chromedp. It evaluates expressions and
// clicks with real mouse events.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is the browser the page test drives (Debian package
// chromium).
const chromiumPath = "/usr/bin/chromium"

// browserCallTimeout bounds each DevTools call of the test.
const browserCallTimeout = 30 * time.Second

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

// chrome is a headless Chromium process and a session to one page.
type chrome struct {
	t   *testing.T
	ctx context.Context // the page's chromedp context
}

// startBrowser starts headless Chromium (its profile in a t.TempDir) and
// opens a page. Cleanup closes the browser and waits for it to exit.
func startBrowser(t *testing.T) *chrome {
	t.Helper()
	// Everything the browser writes stays in the test's temp dir: its
	// profile and its own temp files (TMPDIR, HOME).
	dir := t.TempDir()
	for _, d := range []string{"profile", "tmp", "home"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("TMPDIR="+filepath.Join(dir, "tmp"), "HOME="+filepath.Join(dir, "home"),
			"XDG_CONFIG_HOME="+filepath.Join(dir, "home", ".config"), "XDG_CACHE_HOME="+filepath.Join(dir, "home", ".cache")),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WSURLReadTimeout(60*time.Second),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx) // closes the browser and waits for it
		cancel()
		cancelAlloc()
	})
	// The first action starts the browser and attaches to its page. Its
	// context must live as long as the browser (cancelling it closes the
	// browser): the allocator's WSURLReadTimeout bounds the start instead.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &chrome{t: t, ctx: ctx}
}

// cdpRun runs one DevTools action with browserCallTimeout.
func cdpRun[T any](b *chrome, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, browserCallTimeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// navigate opens u in the page and waits for it to load.
func (b *chrome) navigate(u string) {
	b.t.Helper()
	if _, err := cdpRun(b, chromedp.Navigate(u)); err != nil {
		b.t.Fatalf("navigate %s: %v", u, err)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its
// (JSON-serialisable) value into out.
func (b *chrome) eval(expr string, out any) error {
	raw, err := cdpRun(b, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return fmt.Errorf("%s: %w", expr, err)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
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
// events (moved, pressed, released), as a user would. The element must be
// visible and enabled now.
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
	if _, err := cdpRun(b, chromedp.MouseEvent(chromedp.MouseMoved, pt.X, pt.Y)); err != nil {
		b.t.Fatalf("click %s: mouse moved: %v", sel, err)
	}
	if _, err := cdpRun(b, chromedp.MouseClickXY(pt.X, pt.Y)); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
}

// screenshot saves a PNG of the whole page to path.
func (b *chrome) screenshot(path string) error {
	png, err := cdpRun(b, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	if len(png) == 0 {
		return errors.New("empty screenshot")
	}
	return os.WriteFile(path, png, 0o644)
}
