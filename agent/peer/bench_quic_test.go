package peer

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"
)

// benchSize is what one iteration of BenchmarkBareQUIC sends.
const benchSize = 256 << 20

// BenchmarkBareQUIC measures the transport's limit, the baseline for the
// file-transfer benchmark: one stream carrying 256 MiB between two real
// Endpoints on loopback (the production TLS and quic.Config, a real session
// per iteration), the receiver reading into io.Discard. The handshake is not
// timed; the receiver's last byte is.
//
//	go test -run '^$' -bench BareQUIC -benchtime 3x ./agent/peer
func BenchmarkBareQUIC(b *testing.B) {
	a, t := newTestPeer(b, "dev-a", nil), newTestPeer(b, "dev-b", nil)
	received := make(chan int64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- t.ep.Serve(ctx, func(_ context.Context, ps *Session) {
			buf := make([]byte, 1<<20)
			n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, ps.Stream, buf) // no ReaderFrom: use buf
			if err != nil {
				b.Errorf("receive: %v", err)
			}
			received <- n
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Serve: %v", err)
		}
	}()

	chunk := make([]byte, 1<<20)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		s := session(fmt.Sprint("bench-", i), a, t, time.Now().Add(time.Minute))
		t.cfg.Sessions.Add(s, "alice")
		ps, err := a.ep.Dial(ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for sent := 0; sent < benchSize; sent += len(chunk) {
			if _, err := ps.Stream.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		ps.Stream.Close()
		if n := <-received; n != benchSize {
			b.Fatalf("received %d bytes, want %d", n, benchSize)
		}
		b.StopTimer()
		ps.Close("done")
		b.StartTimer()
	}
}
