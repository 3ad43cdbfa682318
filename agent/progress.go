package agent

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"mesh/transfer"
)

// progress draws a transfer's progress: one redrawn line on a terminal,
// a plain line every few seconds otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time

	mu    sync.Mutex // guards last, p
	last  time.Time
	p     transfer.Progress
	drawn bool
}

func newProgress(w io.Writer, tty bool) *progress {
	return &progress{w: w, tty: tty, start: time.Now()}
}

func (b *progress) update(p transfer.Progress) {
	if b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = p
	every := 5 * time.Second
	if b.tty {
		every = 100 * time.Millisecond
	}
	if now := time.Now(); now.Sub(b.last) >= every {
		b.last = now
		b.draw()
	}
}

// draw writes the current line; b.mu must be held.
func (b *progress) draw() {
	p := b.p
	el := time.Since(b.start).Seconds()
	speed := 0.0
	if el > 0 {
		speed = float64(p.Bytes) / el
	}
	eta := "-"
	if speed > 0 && p.Total > p.Bytes {
		eta = time.Duration(float64(p.Total-p.Bytes) / speed * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(p.Bytes) / float64(p.Total)
	}
	line := fmt.Sprintf("%s %5.1f%%  %s / %s  %s/s  ETA %s  (%d/%d files)",
		bar(pct, 20), pct, size(p.Bytes), size(p.Total), size(int64(speed)), eta, p.FilesDone, p.Files)
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
	b.drawn = true
}

// done draws the final state and ends the line.
func (b *progress) done() {
	if b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw()
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

func bar(pct float64, width int) string {
	n := min(width, max(0, int(pct/100*float64(width))))
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

// size formats bytes in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
