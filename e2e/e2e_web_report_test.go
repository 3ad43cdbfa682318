package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshot saves the viewport as name in t.TempDir(), and also in
// $MESH_SCREENSHOT_DIR when it is set (to refresh docs/screenshots/).
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	png := run(tb, "screenshot", chromedp.CaptureScreenshot())
	dirs := []string{tb.t.TempDir()}
	if d := os.Getenv("MESH_SCREENSHOT_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
		tb.t.Logf("screenshot of %s's %s: %s", tb.user, strings.TrimSuffix(name, ".png"), p)
	}
}

// fail ends the test with msg and, for every open tab, its address, text,
// console and a screenshot kept after the test (in a new temporary
// directory, never in $MESH_SCREENSHOT_DIR).
func (tb *tab) fail(format string, args ...any) {
	tb.t.Helper()
	var report strings.Builder
	for _, o := range tb.b.tabs {
		report.WriteString(o.describe())
	}
	tb.t.Fatalf("%s: %s%s", tb.user, fmt.Sprintf(format, args...), report.String())
}

// describe reports what the tab shows, without failing.
func (tb *tab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Evaluate[string]("location.href"))
	if err != nil {
		loc = "(unknown: " + err.Error() + ")"
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : '(no body)'`))
	if err != nil {
		text = "(unreadable: " + err.Error() + ")"
	}
	if len(text) > 4000 {
		text = strings.ToValidUTF8(text[:4000], "") + "\n…"
	}
	shot := "(none)"
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		shot = failureShot(tb.t, tb.user, png)
	}
	return fmt.Sprintf("\n--- %s's page %s, text:\n%s\n--- %s's screenshot: %s\n--- %s's console:\n%s",
		tb.user, loc, text, tb.user, shot, tb.user, tail(tb.console.String(), 40))
}

// failureShot writes a failure screenshot where it outlives the test.
func failureShot(t *testing.T, user string, png []byte) string {
	dir, err := os.MkdirTemp("", "mesh-web-failure-")
	if err != nil {
		return "(" + err.Error() + ")"
	}
	p := filepath.Join(dir, strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())+"-"+user+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		return "(" + err.Error() + ")"
	}
	return p
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
