package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// startSender runs a real Send of paths on one end of a TCP pair and returns
// the other end, for a hand-written receiver, and a wait for Send's result.
func startSender(t *testing.T, paths []string) (net.Conn, func() (Result, error)) {
	t.Helper()
	c, s := tcpPair(t)
	type ret struct {
		res Result
		err error
	}
	done := make(chan ret, 1)
	go func() {
		defer c.Close()
		res, err := Send(context.Background(), c, paths, Options{ChunkSize: MinChunkSize})
		done <- ret{res, err}
	}()
	return s, func() (Result, error) { r := <-done; return r.res, r.err }
}

// readRawManifest reads the manifest the way a receiver does.
func readRawManifest(t *testing.T, c net.Conn) []entry {
	t.Helper()
	var entries []entry
	for {
		var m manifestMsg
		if err := ReadMsg(c, &m); err != nil {
			t.Fatalf("reading the manifest: %v", err)
		}
		entries = append(entries, m.Entries...)
		if !m.More {
			return entries
		}
	}
}

func TestSenderRejectsBadReceivers(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), randBytes(1, 3*MinChunkSize), 0o644)
	tests := []struct {
		name    string
		receive func(t *testing.T, c net.Conn)
		want    error
	}{{
		name: "no space",
		receive: func(t *testing.T, c net.Conn) {
			WriteMsg(c, abortMsg{Type: typeAbort, Code: codeNoSpace, Reason: "full"})
		},
		want: ErrNoSpace,
	}, {
		name: "resume offset past the end",
		receive: func(t *testing.T, c net.Conn) {
			WriteMsg(c, planMsg{Type: typePlan, Files: []planEntry{{Index: 0, Offset: 1 << 30, Prefix: strings.Repeat("0", 64)}}})
		},
		want: ErrProtocol,
	}, {
		name: "resume offset not on a chunk boundary",
		receive: func(t *testing.T, c net.Conn) {
			WriteMsg(c, planMsg{Type: typePlan, Files: []planEntry{{Index: 0, Offset: 5, Prefix: strings.Repeat("0", 64)}}})
		},
		want: ErrProtocol,
	}, {
		name: "plan for an entry that does not exist",
		receive: func(t *testing.T, c net.Conn) {
			WriteMsg(c, planMsg{Type: typePlan, Files: []planEntry{{Index: 7, Refused: "no"}}})
		},
		want: ErrProtocol,
	}, {
		name: "unsafe landing name",
		receive: func(t *testing.T, c net.Conn) {
			WriteMsg(c, planMsg{Type: typePlan, Tops: []landing{{Name: "f", As: "../f"}}})
		},
		want: ErrProtocol,
	}, {
		name: "ack for an unknown file",
		receive: func(t *testing.T, c net.Conn) {
			WriteMsg(c, planMsg{Type: typePlan})
			WriteMsg(c, ackMsg{Type: typeAck, Index: 3, Status: StatusOK})
		},
		want: ErrProtocol,
	}, {
		name: "summary without acks",
		receive: func(t *testing.T, c net.Conn) {
			WriteMsg(c, planMsg{Type: typePlan})
			WriteMsg(c, summaryMsg{Type: typeSummary})
		},
		want: ErrProtocol,
	}, {
		name: "mismatch",
		receive: func(t *testing.T, c net.Conn) {
			WriteMsg(c, planMsg{Type: typePlan})
			if _, err := io.ReadFull(c, make([]byte, fileFrameLen+3*(chunkFrameLen+MinChunkSize)+endFrameLen)); err != nil {
				t.Fatal(err)
			}
			if err := ReadMsg(c, &doneMsg{}); err != nil {
				t.Fatal(err)
			}
			WriteMsg(c, ackMsg{Type: typeAck, Index: 0, Status: StatusMismatch, Name: "f"})
			WriteMsg(c, summaryMsg{Type: typeSummary, Mismatch: 1})
		},
		want: ErrMismatch,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, wait := startSender(t, []string{filepath.Join(src, "f")})
			readRawManifest(t, c)
			tt.receive(t, c)
			_, err := wait()
			if !errors.Is(err, tt.want) {
				t.Errorf("Send = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSendRefusesBadArguments(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a", "x"), nil, 0o644)
	writeFile(t, filepath.Join(src, "b", "x"), nil, 0o644)
	tests := []struct {
		name  string
		paths []string
		opts  Options
	}{
		{"two paths with one name", []string{filepath.Join(src, "a", "x"), filepath.Join(src, "b", "x")}, Options{}},
		{"a path that does not exist", []string{filepath.Join(src, "nope")}, Options{}},
		{"the root", []string{"/"}, Options{}},
		{"tiny chunks", []string{filepath.Join(src, "a")}, Options{ChunkSize: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inbox := t.TempDir()
			out := transfer(t, inbox, tt.paths, transferOpts{send: tt.opts})
			if out.sendErr == nil || out.recvErr == nil {
				t.Errorf("Send = %v, Receive = %v, want errors", out.sendErr, out.recvErr)
			}
			if got := snapshot(t, inbox); len(got) != 0 {
				t.Errorf("inbox = %v, want it empty", got)
			}
		})
	}
}

func TestNothingToSend(t *testing.T) {
	t.Parallel()
	out := transfer(t, t.TempDir(), nil, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil || len(out.send.Files) != 0 {
		t.Errorf("Send = %v, %v; Receive = %v; want nil, no files", out.send, out.sendErr, out.recvErr)
	}
}

// TestOverSynchronousPipe runs a transfer over net.Pipe: no buffering at
// all, so any wait of one side on the other's flow control deadlocks.
func TestOverSynchronousPipe(t *testing.T) {
	t.Parallel()
	src, inbox := t.TempDir(), t.TempDir()
	for i := range 300 {
		name := string(rune('a'+i%26)) + strings.Repeat("x", i%200)
		writeFile(t, filepath.Join(src, "tree", fmt.Sprint(i/100), name), randBytes(uint64(i), i*97), 0o644)
	}
	writeFile(t, filepath.Join(src, "big"), randBytes(1, 3<<20+1), 0o600)
	mkdir(t, filepath.Join(src, "tree"), 0o755)
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	var recvErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, recvErr = (&Receiver{Inbox: inbox}).Receive(context.Background(), s)
	})
	_, err := Send(context.Background(), c, []string{filepath.Join(src, "tree"), filepath.Join(src, "big")}, Options{ChunkSize: 64 << 10})
	wg.Wait()
	if err != nil || recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", err, recvErr)
	}
	if diff := cmp.Diff(snapshot(t, src), snapshot(t, inbox)); diff != "" {
		t.Errorf("inbox (-want +got):\n%s", diff)
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "t", "big"), randBytes(1, 5<<20), 0o644)
	for i := range 20 {
		writeFile(t, filepath.Join(src, "t", "small", string(rune('a'+i))), randBytes(uint64(i), 100), 0o644)
	}
	var sent, got []Progress
	o := transferOpts{recvProg: func(p Progress) { got = append(got, p) }}
	o.send.Progress = func(p Progress) { sent = append(sent, p) }
	out := transfer(t, t.TempDir(), []string{filepath.Join(src, "t")}, o)
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	for side, ps := range map[string][]Progress{"sender": sent, "receiver": got} {
		for i := 1; i < len(ps); i++ {
			if ps[i].Bytes < ps[i-1].Bytes || ps[i].FilesDone < ps[i-1].FilesDone {
				t.Errorf("%s: progress went back: %+v after %+v", side, ps[i], ps[i-1])
			}
		}
		last := ps[len(ps)-1]
		if last.Bytes != 5<<20+2000 || last.Total != last.Bytes || last.Files != 21 {
			t.Errorf("%s: last progress %+v, want all 21 files and %d bytes", side, last, 5<<20+2000)
		}
	}
}

func TestResumeOfACompletePart(t *testing.T) {
	t.Parallel()
	src, inbox := t.TempDir(), t.TempDir()
	data := randBytes(4, 2<<20+3)
	writeFile(t, filepath.Join(src, "f"), data, 0o644)
	writeFile(t, filepath.Join(inbox, "f.part"), data, 0o600)
	out := transfer(t, inbox, []string{filepath.Join(src, "f")}, transferOpts{})
	if out.sendErr != nil || out.recvErr != nil {
		t.Fatalf("Send = %v, Receive = %v, want nil, nil", out.sendErr, out.recvErr)
	}
	if out.send.Bytes != 0 || out.send.Resumed != int64(len(data)) {
		t.Errorf("Bytes, Resumed = %d, %d, want 0, %d", out.send.Bytes, out.send.Resumed, len(data))
	}
	if _, err := os.Lstat(filepath.Join(inbox, "f.part")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("f.part: %v, want it gone", err)
	}
}
