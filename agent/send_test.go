package agent

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"mesh/agent/peer"
	"mesh/protocol"
	"mesh/transfer"
)

// stallBound is how soon a sender must give up on a receiver that went
// silent while data flowed: a liveness bound, well above the 5 s silence
// it waits for and well below QUIC's 30 s idle timeout.
const stallBound = 15 * time.Second

// writeNoise writes n pseudo-random bytes to path.
func writeNoise(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{1}), n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// senderSetup is what send needs on the sending side: a config, the
// directory of its identity, and the session the server would hand out to
// reach target.
func senderSetup(t *testing.T, target *testPeer, id string) (Config, string, protocol.P2PSession) {
	t.Helper()
	dir := t.TempDir()
	ident, err := peer.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := target.ep.Addr().(*net.UDPAddr)
	sess := protocol.P2PSession{SessionID: id, SessionToken: "mst_secret-" + id, ExpiresAt: time.Now().Add(time.Minute),
		Kind: protocol.SessionFile, InitiatorDeviceID: "laptop", TargetDeviceID: target.cfg.DeviceID,
		Endpoints: protocol.Endpoints{Initiator: protocol.Endpoint{IP: "127.0.0.1", Fingerprint: ident.Fingerprint},
			Target: protocol.Endpoint{IP: a.IP.String(), Port: a.Port, Fingerprint: target.id.Fingerprint}}}
	target.cfg.Sessions.Add(sess, "alice")
	cfg := DefaultConfig()
	cfg.DeviceID, cfg.Username = "laptop", "alice"
	return cfg, dir, sess
}

// stallAfter reads like its stream until limit bytes, then reads nothing
// more until ctx ends: a receiver that is alive (QUIC still answers) but
// takes no more data.
type stallAfter struct {
	io.ReadWriter
	ctx   context.Context
	limit int64
}

func (s *stallAfter) Read(p []byte) (int, error) {
	if s.limit <= 0 {
		<-s.ctx.Done()
		return 0, s.ctx.Err()
	}
	n, err := s.ReadWriter.Read(p[:min(int64(len(p)), s.limit)])
	s.limit -= int64(n)
	return n, err
}

// TestSenderNoticesAVanishedReceiver: a receiver that stops taking data
// mid-way, or whose machine goes silent (its UDP socket closed, nothing
// said), is noticed within seconds, and the error says to rerun.
func TestSenderNoticesAVanishedReceiver(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "big.bin")
	writeNoise(t, src, 96<<20)
	for _, tc := range []struct {
		name   string
		handle func(b *testPeer, pc net.PacketConn) func(context.Context, *peer.Session)
	}{{
		name: "stops reading",
		handle: func(b *testPeer, _ net.PacketConn) func(context.Context, *peer.Session) {
			return func(ctx context.Context, ps *peer.Session) {
				r := transfer.Receiver{Inbox: t.TempDir()}
				_, _ = r.Receive(ctx, &stallAfter{ReadWriter: ps.Stream, ctx: ctx, limit: 4 << 20}) // fails when the sender gives up
			}
		},
	}, {
		name: "goes silent",
		handle: func(b *testPeer, pc net.PacketConn) func(context.Context, *peer.Session) {
			return func(ctx context.Context, ps *peer.Session) {
				var once sync.Once
				r := transfer.Receiver{Inbox: t.TempDir(), Options: transfer.Options{Progress: func(p transfer.Progress) {
					if p.Bytes >= 4<<20 {
						once.Do(func() { _ = pc.Close() }) // as a killed machine: not a word to the peer
					}
				}}}
				_, _ = r.Receive(ctx, ps.Stream) // fails once its socket is gone
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, pc := newSilencablePeer(t, "home")
			serveUntilSilenced(t, b, tc.handle(b, pc))
			cfg, dir, sess := senderSetup(t, b, "s-"+strings.ReplaceAll(tc.name, " ", "-"))
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			reports := make(chan protocol.TransferReport, 1)
			o := SendOptions{Paths: []string{src}, report: func(r protocol.TransferReport) { reports <- r }}
			start := time.Now()
			_, err := send(ctx, cfg, dir, sess, o, slog.New(slog.DiscardHandler))
			took := time.Since(start)
			if err == nil {
				t.Fatal("send succeeded although the receiver stopped")
			}
			if took > stallBound {
				t.Errorf("send gave up after %s, want under %s: %v", took.Round(time.Millisecond), stallBound, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "stopped answering") || !strings.Contains(msg, "rerun") {
				t.Errorf("send error = %q; want it to say the receiver stopped answering and to rerun", msg)
			}
			select {
			case r := <-reports:
				if r.Side != protocol.SideSender || r.Outcome != protocol.OutcomeFailed || r.SessionID != sess.SessionID ||
					r.Name != "big.bin" || r.Reason != err.Error() || r.Validate() != nil {
					t.Errorf("sender's report = %+v (Validate: %v); want a valid failed report of big.bin from the sender, saying %q",
						r, r.Validate(), err)
				}
			default:
				t.Error("the failed send was not reported")
			}
		})
	}
}

// newSilencablePeer is a receiving endpoint whose UDP socket the test may
// close under it, as a killed machine's would vanish.
func newSilencablePeer(t *testing.T, device string) (*testPeer, net.PacketConn) {
	t.Helper()
	id, err := peer.LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := peer.Config{Identity: id, DeviceID: device, User: "alice", Sessions: peer.NewSessionCache(nil), Log: slog.New(slog.DiscardHandler)}
	ep, err := peer.NewEndpoint(cfg, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ep.Close() // the test may have closed its socket already
		_ = pc.Close()
	})
	return &testPeer{ep: ep, cfg: cfg, id: id, log: &logBuf{}}, pc
}

// serveUntilSilenced runs b's Serve with handle until the test ends; Serve
// fails once the test closes b's socket, which is what the test wants.
func serveUntilSilenced(t *testing.T, b *testPeer, handle func(context.Context, *peer.Session)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.ep.Serve(ctx, handle) // an error once the socket is gone
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// TestUnreachableReceiverIsReported: a send that never reaches its
// receiver is reported by the sender, with the reason, under the session.
func TestUnreachableReceiverIsReported(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "notes.txt")
	writeNoise(t, src, 100)
	silent := newTestPeer(t, "home") // its agent is not serving
	cfg, dir, sess := senderSetup(t, silent, "s-unreachable")
	reports := make(chan protocol.TransferReport, 1)
	o := SendOptions{Paths: []string{src}, report: func(r protocol.TransferReport) { reports <- r }}
	_, err := send(t.Context(), cfg, dir, sess, o, slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "receiver unreachable: ") {
		t.Fatalf("send to a silent port = %v, want it to say the receiver is unreachable", err)
	}
	select {
	case r := <-reports:
		want := protocol.TransferReport{SessionID: "s-unreachable", FromDevice: "laptop", ToDevice: "home", Name: "notes.txt",
			Outcome: protocol.OutcomeFailed, Direct: true, Reason: err.Error(), Side: protocol.SideSender}
		if diff := cmp.Diff(want, r); diff != "" || r.Validate() != nil {
			t.Errorf("sender's report (-want +got), Validate: %v:\n%s", r.Validate(), diff)
		}
	default:
		t.Error("the send that never reached its receiver was not reported")
	}
}

// TestDialRetriesUntilAnnounced: a target that has not yet heard of the
// session denies it as unknown, and dialRetry tries again until it has.
func TestDialRetriesUntilAnnounced(t *testing.T) {
	t.Parallel()
	a, b := newTestPeer(t, "laptop"), newTestPeer(t, "home")
	b.serve(t, func(context.Context, *peer.Session) {})
	// A live session of the same initiator lets it past TLS, so the
	// refusal is the session's: "unknown session".
	b.cfg.Sessions.Add(session("other", a, b, time.Now().Add(time.Hour)), "alice")
	s := session("late", a, b, time.Now().Add(time.Minute))
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(b.log.String(), string(peer.ReasonUnknown)) && time.Now().Before(deadline) {
			<-tick.C
		}
		b.cfg.Sessions.Add(s, "alice") // the announcement arrives after the first dial
	}()
	ps, err := dialRetry(t.Context(), a.ep, s)
	if err != nil {
		t.Fatalf("dialRetry before the announcement = %v, want it to retry until the target knows the session", err)
	}
	ps.Close("done")
	if !strings.Contains(b.log.String(), string(peer.ReasonUnknown)) {
		t.Errorf("the target never denied the session as unknown, so nothing was retried:\n%s", b.log.String())
	}
}
