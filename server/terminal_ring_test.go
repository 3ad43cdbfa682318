package server

import (
	"bytes"
	"testing"
)

func TestOutputRing(t *testing.T) {
	t.Parallel()
	seq := func(from, n int) []byte { // the output bytes at offsets from..from+n
		b := make([]byte, n)
		for i := range b {
			b[i] = byte((from + i) % 251)
		}
		return b
	}
	for name, writes := range map[string][]int{ // sizes written one after another
		"empty":         nil,
		"small":         {10, 20},
		"exactly full":  {ringSize},
		"wraps":         {ringSize - 10, 30, 5},
		"wraps twice":   {ringSize/2 + 1, ringSize/2 + 1, ringSize/2 + 1},
		"one huge":      {3*ringSize + 7},
		"huge after":    {100, ringSize + 1},
		"many small":    {100, 100, 100, 100, ringSize/3 + 1, ringSize/3 + 1, ringSize/3 + 1, 9},
		"zero in there": {5, 0, 5},
	} {
		var r outputRing
		total := 0
		for _, n := range writes {
			r.write(seq(total, n))
			total += n
		}
		held := min(total, ringSize)
		if r.end != uint64(total) || r.start() != uint64(total-held) || !bytes.Equal(r.bytes(), seq(total-held, held)) {
			t.Errorf("%s: ring holds %d bytes at %d-%d, want the last %d of %d", name, len(r.bytes()), r.start(), r.end, held, total)
		}
	}
	var r outputRing
	r.write([]byte("abc"))
	r.restart(1000) // a gap: what follows starts afresh
	if r.start() != 1000 || r.bytes() != nil {
		t.Fatalf("after restart: start %d, %q", r.start(), r.bytes())
	}
	r.write([]byte("xyz"))
	if r.start() != 1000 || string(r.bytes()) != "xyz" {
		t.Fatalf("after the gap: start %d, %q", r.start(), r.bytes())
	}
}
