package terminal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Recorder writes a terminal session as an asciicast v2 file: a JSON header
// line, then one JSON array per event and line. Its methods are safe for
// concurrent use; each writes at most one line with one Write call, so a
// write error leaves whole lines behind.
type Recorder struct {
	mu      sync.Mutex // guards everything below
	w       io.Writer
	start   time.Time
	last    float64 // seconds of the last event; events never go back in time
	pending []byte  // an incomplete UTF-8 sequence that ended the last output
	line    bytes.Buffer
	enc     *json.Encoder // into line, without HTML escaping
}

type castHeader struct {
	Version   int    `json:"version"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Timestamp int64  `json:"timestamp"`
	Command   string `json:"command,omitempty"`
}

// NewRecorder writes the header line for a session of cols×rows cells
// started at start running command (left out when empty) and returns the
// Recorder for its events. It does not close w.
func NewRecorder(w io.Writer, cols, rows int, start time.Time, command string) (*Recorder, error) {
	r := &Recorder{w: w, start: start}
	r.enc = json.NewEncoder(&r.line)
	r.enc.SetEscapeHTML(false)
	h := castHeader{Version: 2, Width: cols, Height: rows, Timestamp: start.Unix(), Command: command}
	if err := r.enc.Encode(h); err != nil {
		return nil, fmt.Errorf("encode asciicast header: %w", err)
	}
	if _, err := w.Write(r.line.Bytes()); err != nil {
		return nil, fmt.Errorf("write asciicast header: %w", err)
	}
	return r, nil
}

// Output records data as written to the terminal at t. A UTF-8 sequence cut
// at the end of data is held back until the next Output completes it; bytes
// that are not UTF-8 are recorded as U+FFFD.
func (r *Recorder) Output(t time.Time, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) > 0 {
		data = append(r.pending, data...)
		r.pending = nil
	}
	if cut := incompleteTail(data); cut < len(data) {
		r.pending = append([]byte(nil), data[cut:]...)
		data = data[:cut]
	}
	if len(data) == 0 {
		return nil
	}
	return r.event(t, "o", string(data))
}

// Resize records that the terminal became cols×rows at t.
func (r *Recorder) Resize(t time.Time, cols, rows int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.event(t, "r", strconv.Itoa(cols)+"x"+strconv.Itoa(rows))
}

// Close records output still held back (as U+FFFD, since nothing can
// complete it now), at the time of the last event. It does not close the
// writer; the Recorder must not be used afterwards.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	data := string(r.pending)
	r.pending = nil
	return r.event(r.start.Add(time.Duration(r.last*float64(time.Second))), "o", data)
}

// event writes the line [seconds, kind, text]; r.mu must be held.
func (r *Recorder) event(t time.Time, kind, text string) error {
	secs := max(t.Sub(r.start).Seconds(), r.last)
	r.last = secs
	r.line.Reset()
	r.line.WriteByte('[')
	r.line.Write(strconv.AppendFloat(r.line.AvailableBuffer(), secs, 'f', 6, 64))
	r.line.WriteString(`, "` + kind + `", `)
	// Encode turns invalid UTF-8 into U+FFFD and ends with a newline.
	if err := r.enc.Encode(text); err != nil {
		return fmt.Errorf("encode asciicast event: %w", err)
	}
	r.line.Truncate(r.line.Len() - 1)
	r.line.WriteString("]\n")
	if _, err := r.w.Write(r.line.Bytes()); err != nil {
		return fmt.Errorf("write asciicast event: %w", err)
	}
	return nil
}

// incompleteTail returns where a UTF-8 sequence that data cuts short
// starts, or len(data) if data does not end inside one.
func incompleteTail(data []byte) int {
	for i := len(data) - 1; i >= 0 && i >= len(data)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(data[i]) {
			if utf8.FullRune(data[i:]) {
				return len(data)
			}
			return i
		}
	}
	return len(data)
}
