package e2e

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// This file holds what the WebSocket benchmarks share: the server's
// environment, HTTP and WebSocket client helpers, and readers of the server
// process's /proc figures.

// benchEnv is the benchmarks' server environment: open registration,
// bcrypt cost 4, warn-level logs, no cap on sessions (thousands of clients
// come from 127.0.0.1), and extra on top.
func benchEnv(extra ...string) []string {
	return append([]string{"MESH_AUTH_REGISTRATION=open", "MESH_AUTH_BCRYPT_COST=4", "MESH_LOG=warn",
		"MESH_SERVER_MAX_SESSIONS_PER_IP=0", "MESH_SERVER_MAX_SESSIONS_PER_USER=0"}, extra...)
}

// post sends body as JSON with an optional bearer token, requires status
// want and decodes the answer into out (if not nil). It is safe for
// concurrent use; it does not touch a testing.TB.
func (s *meshServer) post(path, token string, body any, want int, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer res.Body.Close()
	ans, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("POST %s: read answer: %w", path, err)
	}
	if res.StatusCode != want {
		return fmt.Errorf("POST %s = %d %s, want %d", path, res.StatusCode, ans, want)
	}
	if out != nil {
		if err := json.Unmarshal(ans, out); err != nil {
			return fmt.Errorf("POST %s answer %s: %w", path, ans, err)
		}
	}
	return nil
}

// registerAll registers the users in names (password "secret1"), a few at
// a time, and returns their access tokens in the same order.
func (s *meshServer) registerAll(tb testing.TB, names []string) []string {
	tb.Helper()
	toks := make([]string, len(names))
	err := benchParallel(len(names), 8, func(i int) error {
		var a struct {
			AccessToken string `json:"access_token"`
		}
		err := s.post("/api/auth/register", "", map[string]string{"username": names[i], "password": "secret1"}, http.StatusCreated, &a)
		toks[i] = a.AccessToken
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return toks
}

// createRoom creates a public room and returns its id.
func (s *meshServer) createRoom(tb testing.TB, token, name string) int64 {
	tb.Helper()
	var r struct {
		ID int64 `json:"id"`
	}
	if err := s.post("/api/rooms", token, map[string]string{"name": name, "visibility": "public"}, http.StatusCreated, &r); err != nil {
		tb.Fatal(err)
	} else if r.ID == 0 {
		tb.Fatalf("create room %q: no id in the answer", name)
	}
	return r.ID
}

// wsURL is the WebSocket address for token.
func (s *meshServer) wsURL(token string) string {
	return "ws" + strings.TrimPrefix(s.url, "http") + "/ws?token=" + token
}

// benchDialer is shared by every benchmark client; the buffers are small
// because the clients' own memory is not what is measured.
var benchDialer = websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}

// dialHello opens an authenticated session, sends system.hello and waits for
// system.welcome, skipping anything else that arrives first.
func (s *meshServer) dialHello(token string) (*websocket.Conn, error) {
	ws, res, err := benchDialer.Dial(s.wsURL(token), nil)
	if err != nil {
		if res != nil {
			return nil, fmt.Errorf("dial /ws: %w (status %d)", err, res.StatusCode)
		}
		return nil, fmt.Errorf("dial /ws: %w", err)
	}
	if err := benchSend(ws, protocol.TypeSystemHello, "hello", nil); err != nil {
		ws.Close()
		return nil, err
	}
	if _, err := benchWaitFor(ws, protocol.TypeSystemWelcome, 30*time.Second); err != nil {
		ws.Close()
		return nil, err
	}
	return ws, nil
}

// benchSend writes one envelope with payload (nil for none).
func benchSend(ws *websocket.Conn, t protocol.Type, id string, payload any) error {
	env := protocol.Envelope{Type: t, ID: id, Timestamp: time.Now()}
	if payload != nil {
		p, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		env.Payload = p
	}
	b, err := protocol.Encode(env)
	if err != nil {
		return err
	}
	return ws.WriteMessage(websocket.TextMessage, b)
}

// benchWaitFor reads until a frame of type t, within d; a system.error
// before it is an error.
func benchWaitFor(ws *websocket.Conn, t protocol.Type, d time.Duration) (protocol.Envelope, error) {
	_ = ws.SetReadDeadline(time.Now().Add(d)) // a failed deadline shows up as a failed read
	defer ws.SetReadDeadline(time.Time{})
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return protocol.Envelope{}, fmt.Errorf("waiting for %s: %w", t, err)
		}
		env, err := protocol.Decode(b)
		if err != nil {
			return env, fmt.Errorf("waiting for %s: undecodable frame %q: %w", t, b, err)
		}
		switch env.Type {
		case t:
			return env, nil
		case protocol.TypeSystemError:
			return env, fmt.Errorf("waiting for %s: got system.error %s", t, env.Payload)
		}
	}
}

// dialMany opens a hello'd session for each token, a few at a time, and
// closes them all when tb ends.
func (s *meshServer) dialMany(tb testing.TB, toks []string) []*websocket.Conn {
	tb.Helper()
	conns := make([]*websocket.Conn, len(toks))
	tb.Cleanup(func() { benchCloseAll(conns) })
	err := benchParallel(len(toks), 32, func(i int) error {
		ws, err := s.dialHello(toks[i])
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		conns[i] = ws
		return nil
	})
	if err != nil {
		tb.Fatalf("%v\nserver log:\n%s", err, s.logs.tail(4000))
	}
	return conns
}

// benchCloseAll closes every non-nil connection without a closing handshake.
func benchCloseAll(conns []*websocket.Conn) {
	for _, ws := range conns {
		if ws != nil {
			_ = ws.Close() // the benchmark is over; the server sees EOF
		}
	}
}

// benchParallel runs f(0..n-1) on workers goroutines, waits for them and
// returns the first error; after an error the remaining calls are skipped.
func benchParallel(n, workers int, f func(i int) error) error {
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards firstErr
		firstErr error
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				mu.Lock()
				failed := firstErr != nil
				mu.Unlock()
				if failed {
					continue
				}
				if err := f(i); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstErr
}

// The parts of a chat.message.created frame that receivers look for.
var (
	chatPrefix = []byte(`{"type":"chat.message.created"`)
	seqKey     = []byte(`"seq":`)
	textKey    = []byte(`"text":"`)
	timedMark  = []byte("b ") // then the send time in UnixNano
)

// readInto appends everything from rd to buf.
func readInto(buf []byte, rd io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		} else if err != nil {
			return buf, err
		}
	}
}

// parseChat finds the seq and, for a timed message ("b UNIXNANO …"), the
// send time in a chat.message.created frame without decoding the JSON.
func parseChat(f []byte) (seq, sent int64, ok bool) {
	i := bytes.Index(f, seqKey)
	j := bytes.Index(f, textKey)
	if i < 0 || j < 0 {
		return 0, 0, false
	}
	seq, _ = leadingInt(f[i+len(seqKey):])
	if t := f[j+len(textKey):]; bytes.HasPrefix(t, timedMark) {
		sent, _ = leadingInt(t[len(timedMark):])
	}
	return seq, sent, seq > 0
}

func leadingInt(b []byte) (n int64, digits int) {
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	return n, digits
}

// procStatus returns a field of /proc/PID/status, in kB for memory fields.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// clockTick is Linux's USER_HZ, the unit of utime and stime in /proc/PID/stat.
const clockTick = 10 * time.Millisecond

// procCPU returns the user+system CPU time the process has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:])) // state ppid … utime(11) stime(12)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(u+st) * clockTick, nil
}

// selfCPU returns the user+system CPU time of this (the client) process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0 // Getrusage(RUSAGE_SELF) does not fail on Linux
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latHist is an HDR-style histogram of non-negative nanosecond values:
// exact below 128 ns, then 64 buckets per power of two (≤ 1.6% error).
// It is not safe for concurrent use; merge per-goroutine histograms.
type latHist struct {
	counts [(64 - latSubBits + 1) << (latSubBits - 1)]uint32
	total  int64
	max    int64
}

const latSubBits = 7

func latIndex(v int64) int {
	if v < 1<<latSubBits {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - latSubBits
	return e<<(latSubBits-1) + int(v>>e)
}

// latValue is the middle of bucket i.
func latValue(i int) int64 {
	if i < 1<<latSubBits {
		return int64(i)
	}
	e := i>>(latSubBits-1) - 1
	m := int64(i - e<<(latSubBits-1))
	return m<<e + (1<<e)/2
}

func (h *latHist) record(v int64) {
	v = max(v, 0) // a wall clock step backwards; rare and harmless
	h.counts[latIndex(v)]++
	h.total++
	h.max = max(h.max, v)
}

func (h *latHist) merge(o *latHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the records lie.
func (h *latHist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := int64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen int64
	for i, c := range h.counts {
		if seen += int64(c); seen >= rank {
			return time.Duration(min(latValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}
