package terminal

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecorder(t *testing.T) {
	t.Parallel()
	start := time.Unix(1700000000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	var file bytes.Buffer
	r, err := NewRecorder(&file, 80, 24, start, "bash")
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { return r.Output(at(1000), []byte("h\xc3")) }, // é cut in two
		func() error { return r.Output(at(1500), []byte("\xa9 <b>\r\n")) },
		func() error { return r.Resize(at(2000), 100, 40) },
		func() error { return r.Output(at(2500), []byte("\xe2")) }, // nothing complete: no event
		func() error { return r.Output(at(3000), []byte("\x82\xac\xff!")) },
		func() error { return r.Output(at(2900), []byte("\xf0\x9f")) }, // earlier than the last event
		r.Close,
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}

	lines := strings.Split(strings.TrimSuffix(file.String(), "\n"), "\n")
	var header map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &header); err != nil {
		t.Fatalf("header %s: %v", lines[0], err)
	}
	wantHeader := map[string]any{"version": 2.0, "width": 80.0, "height": 24.0, "timestamp": 1700000000.0, "command": "bash"}
	if diff := cmp.Diff(wantHeader, header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	var got [][]any
	var text strings.Builder
	for _, line := range lines[1:] {
		var ev []any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event line %s: %v", line, err)
		}
		got = append(got, ev)
		if ev[1] == "o" {
			text.WriteString(ev[2].(string))
		}
	}
	want := [][]any{
		{1.0, "o", "h"},
		{1.5, "o", "é <b>\r\n"},
		{2.0, "r", "100x40"},
		{3.0, "o", "€\uFFFD!"},
		{3.0, "o", "\uFFFD\uFFFD"}, // an emoji cut short for good, at Close
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if want := "hé <b>\r\n€\uFFFD!\uFFFD\uFFFD"; text.String() != want {
		t.Errorf("recorded text %q, want %q", text.String(), want)
	}
	if !strings.HasPrefix(lines[1], `[1.000000, "o", `) {
		t.Errorf("event line %s, want seconds with 6 decimals", lines[1])
	}
}

func TestRecorderHeaderWithoutCommand(t *testing.T) {
	t.Parallel()
	var file bytes.Buffer
	if _, err := NewRecorder(&file, 132, 43, time.Unix(5, 0), ""); err != nil {
		t.Fatal(err)
	}
	if got, want := file.String(), `{"version":2,"width":132,"height":43,"timestamp":5}`+"\n"; got != want {
		t.Errorf("header %q, want %q", got, want)
	}
}

func TestIncompleteTail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 3},
		{"a\xc3", 1},
		{"a\xc3\xa9", 3},
		{"\xe2\x82", 0},
		{"a\xf0\x9f\x98", 1},
		{"a\xf0\x9f\x98\x80", 5},
		{"a\xff", 2},        // invalid, not incomplete
		{"\x80\x80\x80", 3}, // continuation bytes alone cannot be completed
	} {
		if got := incompleteTail([]byte(tc.in)); got != tc.want {
			t.Errorf("incompleteTail(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
