package terminal

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
)

type joinOutcome struct {
	st  ExitStatus
	err error
}

// startJoin runs Join on conn and returns where its result will arrive.
func startJoin(ctx context.Context, conn net.Conn, o JoinOptions) <-chan joinOutcome {
	done := make(chan joinOutcome, 1)
	go func() {
		st, err := Join(ctx, conn, o)
		done <- joinOutcome{st, err}
	}()
	return done
}

func TestJoinDetach(t *testing.T) {
	t.Parallel()
	h := NewHost(HostConfig{AllowInput: true})
	typed := newWatchWriter()
	client, server := tcpPair(t)
	served := make(chan error, 1)
	go func() { served <- h.Serve(context.Background(), server, "v", true, typed) }()

	keys, keyboard := io.Pipe()
	t.Cleanup(func() { keyboard.Close() })
	hello := make(chan Hello, 1)
	done := startJoin(context.Background(), client, JoinOptions{In: keys, DetachKey: 0x1d, OnHello: func(h Hello) { hello <- h }})
	recv(t, hello, "hello") // keystrokes before it are dropped
	// One read: the bytes before the key still go, those after it do not.
	if _, err := keyboard.Write([]byte("ab\x1dcd")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, done, "Join to return"); got != (joinOutcome{st: ExitStatus{Detached: true}}) {
		t.Errorf("Join after the detach key = %+v, want Detached", got)
	}
	if err := client.(*net.TCPConn).CloseWrite(); err != nil { // the viewer leaves cleanly
		t.Fatal(err)
	}
	if err := recv(t, served, "Serve to return"); err != nil {
		t.Errorf("Serve after the viewer left = %v, want nil", err)
	}
	if got := typed.String(); got != "ab" {
		t.Errorf("the shell got %q, want %q", got, "ab")
	}
}

// fakeHost is the host's end of a net.Pipe, driven by the test.
func fakeHost(t *testing.T) (viewerEnd, hostEnd net.Conn) {
	viewerEnd, hostEnd = net.Pipe()
	t.Cleanup(func() { viewerEnd.Close(); hostEnd.Close() })
	return viewerEnd, hostEnd
}

func TestJoinReadOnlySendsNothing(t *testing.T) {
	t.Parallel()
	viewerEnd, hostEnd := fakeHost(t)
	keys, keyboard := io.Pipe()
	t.Cleanup(func() { keyboard.Close() })
	done := startJoin(context.Background(), viewerEnd, JoinOptions{In: keys, DetachKey: 0x1d})
	if err := WriteFrame(hostEnd, Hello{Input: false}.Frame()); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ls\r", "\x1b[1;1R", "x\x1dy"} {
		if _, err := keyboard.Write([]byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if got := recv(t, done, "Join to return"); !got.st.Detached || got.err != nil {
		t.Errorf("Join after the detach key = %+v, want Detached", got)
	}
	viewerEnd.Close()
	if f, err := NewReader(hostEnd).Next(); err != io.EOF {
		t.Errorf("a read-only viewer sent %+v, %v; want nothing", f, err)
	}
}

func TestJoinDetachBeforeHello(t *testing.T) {
	t.Parallel()
	viewerEnd, _ := fakeHost(t) // a host that never says hello
	keys, keyboard := io.Pipe()
	t.Cleanup(func() { keyboard.Close() })
	done := startJoin(context.Background(), viewerEnd, JoinOptions{In: keys, DetachKey: 0x1d})
	if _, err := keyboard.Write([]byte("\x1d")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, done, "Join to return"); got != (joinOutcome{st: ExitStatus{Detached: true}}) {
		t.Errorf("Join after the detach key = %+v, want Detached", got)
	}
}

func TestJoinEnds(t *testing.T) {
	t.Parallel()
	output := Frame{Type: FrameOutput, Data: []byte("hi")}
	for _, tc := range []struct {
		name    string
		frames  []Frame
		cancel  bool
		wantErr error
	}{
		{"output before hello", []Frame{output}, false, ErrProtocol},
		{"input from the host", []Frame{Hello{}.Frame(), {Type: FrameInput}}, false, ErrProtocol},
		{"stream ends before exit", []Frame{Hello{}.Frame(), output}, false, io.ErrUnexpectedEOF},
		{"context done", []Frame{Hello{}.Frame()}, true, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			viewerEnd, hostEnd := fakeHost(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := newWatchWriter()
			done := startJoin(ctx, viewerEnd, JoinOptions{Out: out})
			for _, f := range tc.frames {
				if err := WriteFrame(hostEnd, f); err != nil {
					t.Fatal(err)
				}
			}
			if tc.cancel {
				cancel()
			} else {
				hostEnd.Close()
			}
			got := recv(t, done, "Join to return")
			if !errors.Is(got.err, tc.wantErr) {
				t.Errorf("Join = %+v, want an error wrapping %v", got, tc.wantErr)
			}
		})
	}
}

func TestJoinSkipsRepeatedOutput(t *testing.T) {
	t.Parallel()
	viewerEnd, hostEnd := fakeHost(t)
	out := newWatchWriter()
	done := startJoin(context.Background(), viewerEnd, JoinOptions{Out: out})
	for _, f := range []Frame{
		Hello{Offset: 10}.Frame(),
		{Type: FrameOutput, Offset: 10, Data: []byte("abc")},
		{Type: FrameOutput, Offset: 12, Data: []byte("cde")}, // overlaps by one byte
		{Type: FrameOutput, Offset: 20, Data: []byte("xy")},  // after a gap
		{Type: FrameExit, Code: 1, Reason: "bye"},
	} {
		if err := WriteFrame(hostEnd, f); err != nil {
			t.Fatal(err)
		}
	}
	if got := recv(t, done, "Join to return"); got != (joinOutcome{st: ExitStatus{Code: 1, Reason: "bye"}}) {
		t.Errorf("Join = %+v, want code 1, reason bye", got)
	}
	if got := out.String(); got != "abcdexy" {
		t.Errorf("output %q, want %q", got, "abcdexy")
	}
}
