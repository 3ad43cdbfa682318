package transfer

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// stallConn passes reads through until limit bytes, then reads nothing more
// until released: a receiver that is alive but takes no more data.
type stallConn struct {
	net.Conn
	limit   int64
	release chan struct{}
}

func (c *stallConn) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		<-c.release
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p[:min(int64(len(p)), c.limit)])
	c.limit -= int64(n)
	return n, err
}

// paceConn reads at most 64 KiB per tick: a slow but steady receiver.
type paceConn struct {
	net.Conn
	tick *time.Ticker
}

func (c *paceConn) Read(p []byte) (int, error) {
	<-c.tick.C
	return c.Conn.Read(p[:min(len(p), 64<<10)])
}

// lateConn holds back the receiver's first write (its plan) by delay, as
// a receiver hashing a large .part to resume does.
type lateConn struct {
	net.Conn
	delay time.Duration
	once  sync.Once
}

func (c *lateConn) Write(p []byte) (int, error) {
	c.once.Do(func() { time.Sleep(c.delay) }) // the slowness under test, not synchronisation
	return c.Conn.Write(p)
}

// TestStalledReceiver: a receiver that stops reading mid-way makes Send
// give up with ErrStalled soon after StallTimeout, not hang.
func TestStalledReceiver(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "big.bin")
	writeFile(t, src, randBytes(7, 64<<20), 0o644)
	c, s := tcpPair(t)
	rc := &stallConn{Conn: s, limit: 2 << 20, release: make(chan struct{})}
	recvDone := make(chan error, 1)
	go func() {
		r := &Receiver{Inbox: t.TempDir()}
		_, err := r.Receive(context.Background(), rc)
		recvDone <- err
	}()
	start := time.Now()
	_, err := Send(context.Background(), c, []string{src}, Options{StallTimeout: 300 * time.Millisecond})
	took := time.Since(start)
	c.Close()
	close(rc.release)
	<-recvDone // fails: the sender is gone
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("Send = %v, want ErrStalled", err)
	}
	if took > 10*time.Second {
		t.Errorf("Send gave up after %s; want it soon after the 300ms stall timeout", took)
	}
}

// TestSlowIsNotStalled: a receiver that takes data slowly but steadily (a
// chunk takes longer than StallTimeout to get through), or that is slow to
// answer the manifest, is not taken for gone.
func TestSlowIsNotStalled(t *testing.T) {
	t.Parallel()
	// Generous against scheduling hiccups under -race on a busy machine:
	// each 64 KiB piece gets 1.5 s, and takes 0.2 s.
	const stall = 1500 * time.Millisecond
	src := filepath.Join(t.TempDir(), "slow.bin")
	writeFile(t, src, randBytes(8, 1<<20+5), 0o644)
	for name, wrap := range map[string]func(net.Conn) net.Conn{
		"slow reads": func(c net.Conn) net.Conn {
			tick := time.NewTicker(200 * time.Millisecond) // 320 KiB/s: a 1 MiB chunk takes 3.2 s, twice the stall timeout
			t.Cleanup(tick.Stop)
			return &paceConn{Conn: c, tick: tick}
		},
		"slow plan": func(c net.Conn) net.Conn { return &lateConn{Conn: c, delay: 3 * stall} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Small socket buffers, so a write blocks as long as the receiver
			// takes to read it, as on a slow link.
			small := func(c net.Conn) net.Conn {
				tc := c.(*net.TCPConn)
				if err := errors.Join(tc.SetWriteBuffer(16<<10), tc.SetReadBuffer(16<<10)); err != nil {
					t.Fatal(err)
				}
				return c
			}
			out := transfer(t, t.TempDir(), []string{src}, transferOpts{send: Options{StallTimeout: stall},
				wrapSend: small, wrapRecv: func(c net.Conn) net.Conn { return wrap(small(c)) }})
			if out.sendErr != nil || out.recvErr != nil {
				t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
			}
		})
	}
}
