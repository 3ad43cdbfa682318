package transfer

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDbgPhases(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "big"), randBytes(1, 256<<20), 0o644)
	for i := 0; i < 4; i++ {
		var first, last, rlast time.Time
		start := time.Now()
		o := transferOpts{}
		o.send.Progress = func(p Progress) {
			if first.IsZero() {
				first = time.Now()
			}
			last = time.Now()
		}
		o.recvProg = func(p Progress) { rlast = time.Now() }
		in := t.TempDir()
		out := transfer(t, in, []string{filepath.Join(src, "big")}, o)
		end := time.Now()
		t.Logf("hash+plan %v, send data %v, recv lag %v, finish %v, total %v %v", first.Sub(start), last.Sub(first), rlast.Sub(last), end.Sub(rlast), end.Sub(start), out.sendErr)
		os.RemoveAll(in)
	}
}
