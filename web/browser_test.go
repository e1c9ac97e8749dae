package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// The browser tests drive the dashboard in a real headless Chromium
// (Debian's package "chromium") through the DevTools protocol (chromedp).
// Like the real-Redis tests, they skip when the browser is missing, except
// under CI=true, where they fail.

// requireChromium returns the path of the browser.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if redistest.InCI() {
		t.Fatal("chromium not found and CI=true: the browser tests must run in CI (apt-get install chromium)")
	}
	t.Skip("chromium not found; skipping the browser test (it fails under CI=true)")
	return ""
}

// browser is one headless Chromium for one test, and what its pages wrote
// to their consoles.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newBrowser starts Chromium with a fresh profile; it stops at the end of
// the test. Every step of the test must end within timeout.
func newBrowser(t *testing.T, timeout time.Duration) *browser {
	t.Helper()
	path := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		_ = chromedp.Cancel(bctx)
		cancelBrowser()
	})
	b := &browser{t: t, ctx: bctx}
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs actions, and fails the test with a screenshot if one fails.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.screenshot("failed-" + what)
		b.t.Fatalf("%s: %v", what, err)
	}
}

// waitFor waits until the JavaScript expression is true.
func (b *browser) waitFor(what, expression string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](expression,
		chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
}

// click waits for the element of a CSS selector and clicks it, in one step
// in the page: rows of a live list may be replaced at any moment.
func (b *browser) click(what, selector string) {
	b.t.Helper()
	sel, err := json.Marshal(selector)
	require.NoError(b.t, err)
	b.waitFor(what, fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return false; e.click(); return true })()`, sel))
}

// eval returns the value of a JavaScript expression.
func eval[T any](b *browser, expression string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expression))
	require.NoError(b.t, err, expression)
	return v
}

// text returns the text of the first element matching a CSS selector,
// read in one step in the page (live pages replace their elements).
func (b *browser) text(selector string) string {
	b.t.Helper()
	sel, err := json.Marshal(selector)
	require.NoError(b.t, err)
	b.waitFor("find "+selector, fmt.Sprintf(`!!document.querySelector(%s)`, sel))
	return strings.TrimSpace(eval[string](b, fmt.Sprintf(`(document.querySelector(%s) || {}).textContent || ''`, sel)))
}

// screenshot saves the whole page as <artifacts>/<test>/<name>.png: under
// $ORDERFLOW_ARTIFACTS when it is set, else under the system's temporary
// directory (never in the repository).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	root := os.Getenv("ORDERFLOW_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "orderflow-artifacts")
	}
	dir := filepath.Join(root, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(b.t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", file)
}

// requireCleanConsole fails the test for every error or exception the
// pages reported, but the browser's log lines of failed requests that
// allowed matches (such as a 404 the page expects and handles).
func (b *browser) requireCleanConsole(allowed ...*regexp.Regexp) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var bad []string
next:
	for _, m := range b.console {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			if m.Type == chromedp.ConsoleWarning {
				b.t.Logf("console warning: %s (%s)", m.Text, m.URL)
			}
			continue
		}
		for _, re := range allowed {
			if m.Source == "network" && (re.MatchString(m.URL) || re.MatchString(m.Text)) {
				continue next
			}
		}
		bad = append(bad, m.String()+" at "+m.URL)
	}
	require.Empty(b.t, bad, "the console shows errors")
}
