package transfer

import (
	"context"
	"encoding/hex"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/zeebo/blake3"
)

// tcpPair returns both ends of a real TCP loopback connection.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			tb.Error(err)
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		tb.FailNow()
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// outcome is what both sides of one transfer returned.
type outcome struct {
	send, recv       Result
	sendErr, recvErr error
}

// transferOpts tunes one test transfer.
type transferOpts struct {
	send      Options
	sendCtx   context.Context
	recvCtx   context.Context
	wrapSend  func(net.Conn) net.Conn // wraps the sender's end
	wrapRecv  func(net.Conn) net.Conn // wraps the receiver's end
	freeSpace func(string) (uint64, error)
	recvProg  func(Progress)
	umask     func() fs.FileMode // the receiver's; nil means 022, whatever the test process's
}

// transfer runs Send and Receive over TCP loopback; like the agent, each
// side closes its end of the connection when it returns.
func transfer(tb testing.TB, inbox string, paths []string, o transferOpts) outcome {
	tb.Helper()
	c, s := tcpPair(tb)
	if o.wrapSend != nil {
		c = o.wrapSend(c)
	}
	if o.wrapRecv != nil {
		s = o.wrapRecv(s)
	}
	if o.sendCtx == nil {
		o.sendCtx = context.Background()
	}
	if o.recvCtx == nil {
		o.recvCtx = context.Background()
	}
	var out outcome
	var wg sync.WaitGroup
	wg.Go(func() {
		defer s.Close()
		if o.umask == nil {
			o.umask = func() fs.FileMode { return 0o022 }
		}
		r := &Receiver{Inbox: inbox, FreeSpace: o.freeSpace, Umask: o.umask, Options: Options{Progress: o.recvProg}}
		out.recv, out.recvErr = r.Receive(o.recvCtx, s)
	})
	out.send, out.sendErr = Send(o.sendCtx, c, paths, o.send)
	c.Close()
	wg.Wait()
	return out
}

// randBytes returns n pseudo-random bytes from seed.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func b3(b []byte) string {
	s := blake3.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeFile creates path (and its parents) with data and exactly mode.
func writeFile(tb testing.TB, path string, data []byte, mode fs.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}

// node is what snapshot records of one path.
type node struct {
	Kind   string // "file", "dir", "symlink"
	Mode   fs.FileMode
	BLAKE3 string
}

// snapshot maps every path under root (slash-separated, relative) to what it is.
func snapshot(tb testing.TB, root string) map[string]node {
	tb.Helper()
	m := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		n := node{Kind: "dir", Mode: fi.Mode().Perm()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			n = node{Kind: "symlink"}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n = node{Kind: "file", Mode: fi.Mode().Perm(), BLAKE3: b3(data)}
		}
		m[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// cutConn closes its connection once more than limit bytes were written.
type cutConn struct {
	net.Conn
	mu    sync.Mutex
	limit int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int64(len(p)) > c.limit {
		n, _ := c.Conn.Write(p[:c.limit])
		c.limit = 0
		c.Conn.Close()
		return n, net.ErrClosed
	}
	c.limit -= int64(len(p))
	return c.Conn.Write(p)
}

// flipConn flips one bit of the byte at stream position at as it is read.
type flipConn struct {
	net.Conn
	pos, at int64
}

func (c *flipConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.at >= c.pos && c.at < c.pos+int64(n) {
		p[c.at-c.pos] ^= 0x10
	}
	c.pos += int64(n)
	return n, err
}

func hexSum(s [32]byte) string { return hex.EncodeToString(s[:]) }
