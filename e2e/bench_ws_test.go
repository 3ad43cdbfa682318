package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mesh/protocol"
)

// The WebSocket hub's benchmarks run the real binary as a separate process,
// so what they report about the server (CPU, RSS) is the server's alone;
// the clients share the machine with it, which the CPU figures show.
//
//	go test -run '^$' -bench 'Fanout|IdleMemory' -benchtime 1x .
//
// MESH_BENCH_FANOUT_SECONDS shortens (or lengthens) a fan-out round.
// MESH_BENCH_FANOUT_RATE=N paces the sender to N messages/s (still within
// its window) instead of sending as fast as acknowledgements allow, to see
// latency at a given load rather than at saturation.

const (
	fanoutUsers   = 1000 // one session each, all members of one public room
	fanoutWindow  = 32   // the sender's unacknowledged sends
	fanoutDefault = 10 * time.Second
	fanoutSettle  = 60 * time.Second // bound on the last delivery after the last ack
	// fanoutPad makes a message about as long as a line of chat.
	fanoutPad = "lorem ipsum dolor sit amet, consectetur adipiscing elit"
)

// BenchmarkFanout measures delivery of one room's messages to 1,000 member
// sessions: one sender posts for a fixed time with fanoutWindow sends in
// flight, each receiver times every message from send to receipt, and
// every receiver must get every acknowledged message once, in seq order.
// Each b.Loop iteration is one round on the same server and sessions.
func BenchmarkFanout(b *testing.B) {
	dur := fanoutDuration(b)
	setup := time.Now()
	srv := startServer(b, serverOpts{env: benchEnv("MESH_SERVER_WS_RATE=1000000", "MESH_SERVER_WS_BURST=1000000")})
	senderTok := srv.registerAll(b, []string{"sender"})[0]
	room := srv.createRoom(b, senderTok, "fanout")
	names := make([]string, fanoutUsers)
	for i := range names {
		names[i] = fmt.Sprintf("recv%04d", i)
	}
	toks := srv.registerAll(b, names)
	err := benchParallel(len(names), 8, func(i int) error { // members before sessions: no join events to fan out
		return srv.post(fmt.Sprintf("/api/rooms/%d/members", room), senderTok, map[string]string{"username": names[i]}, http.StatusCreated, nil)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("registered %d members in %s", len(names), time.Since(setup).Round(time.Millisecond))

	var st fanoutState
	recvs := make([]*fanReceiver, len(toks))
	for i, ws := range srv.dialMany(b, toks) { // each hello'd: its presence is already queued
		recvs[i] = &fanReceiver{st: &st, ws: ws, done: make(chan struct{})}
		go recvs[i].run()
	}
	snd := newFanSender(b, srv, senderTok, room)
	snd.rate = fanoutEnv(b, "MESH_BENCH_FANOUT_RATE")
	// A warm-up message marks the start: every receiver has its presence
	// storm behind it once it arrives.
	warm := snd.round(b, 0)
	waitReceivers(b, srv, &st, recvs, warm.last)
	b.Logf("setup (%d sessions connected, warm-up delivered) in %s", len(recvs), time.Since(setup).Round(time.Millisecond))

	b.Logf("sender: window %d, pace %v msgs/s (0: as fast as acks allow), %s per round", fanoutWindow, snd.rate, dur)
	var tot fanoutTotals
	for b.Loop() {
		tot.add(fanoutRound(b, srv, &st, snd, recvs, dur))
	}
	st.stopping.Store(true)
	_ = snd.ws.Close() // ends the ack reader; the measurement is over
	for _, r := range recvs {
		_ = r.ws.Close() // as above, for each receiver
		<-r.done
	}
	<-snd.readDone
	if snd.rate > 0 {
		b.ReportMetric(snd.rate, "paced-msgs/s")
	}
	tot.report(b, recvs, warm.last)
}

// fanoutDuration is MESH_BENCH_FANOUT_SECONDS, or fanoutDefault.
func fanoutDuration(b *testing.B) time.Duration {
	s := fanoutEnv(b, "MESH_BENCH_FANOUT_SECONDS")
	if s == 0 {
		return fanoutDefault
	}
	return time.Duration(s * float64(time.Second))
}

// fanoutEnv reads a positive number from the environment; 0 if unset.
func fanoutEnv(b *testing.B, name string) float64 {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return f
}

// fanoutState is what the receivers share with the benchmark.
type fanoutState struct {
	stopping atomic.Bool  // set before the benchmark closes the sessions
	failed   atomic.Int32 // receivers that stopped on an error
}

// fanReceiver is one member session. Its fields below the atomics belong to
// its goroutine until done is closed.
type fanReceiver struct {
	st      *fanoutState
	ws      *websocket.Conn
	lastSeq atomic.Int64 // polled by waitReceivers
	lastAt  atomic.Int64 // UnixNano of the latest timed delivery
	done    chan struct{}

	first, prev int64 // seqs of the first and the latest chat.message.created
	timed       int64 // deliveries of timed (non-warm-up) messages
	bad         string
	err         error
	hist        latHist
}

func (r *fanReceiver) run() {
	defer close(r.done)
	buf := make([]byte, 0, 1024)
	for {
		_, rd, err := r.ws.NextReader()
		if err == nil {
			buf, err = readInto(buf[:0], rd)
		}
		if err != nil {
			if !r.st.stopping.Load() {
				r.err = err
				r.st.failed.Add(1)
			}
			return
		}
		if !bytes.HasPrefix(buf, chatPrefix) {
			continue // presence, member events
		}
		now := time.Now().UnixNano()
		seq, sent, ok := parseChat(buf)
		if !ok {
			r.fail(fmt.Sprintf("unparsable chat.message.created %q", buf))
			continue
		}
		if r.prev != 0 && seq != r.prev+1 {
			r.fail(fmt.Sprintf("seq %d after %d", seq, r.prev))
		}
		if r.first == 0 {
			r.first = seq
		}
		r.prev = seq
		if sent > 0 {
			r.timed++
			r.hist.record(now - sent)
			r.lastAt.Store(now)
		}
		r.lastSeq.Store(seq)
	}
}

func (r *fanReceiver) fail(msg string) {
	if r.bad == "" {
		r.bad = msg
	}
}

// waitReceivers waits until every receiver has seen seq, failing if one
// stops or the last is not there within fanoutSettle.
func waitReceivers(b *testing.B, srv *meshServer, st *fanoutState, recvs []*fanReceiver, seq int64) {
	b.Helper()
	deadline := time.Now().Add(fanoutSettle)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		behind := 0
		for _, r := range recvs {
			if r.lastSeq.Load() < seq {
				behind++
			}
		}
		switch {
		case behind == 0:
			return
		case st.failed.Load() > 0:
			for _, r := range recvs {
				select {
				case <-r.done:
					b.Fatalf("a receiver stopped before seq %d: %v (%d stopped)\nserver log:\n%s", seq, r.err, st.failed.Load(), srv.logs.tail(4000))
				default:
				}
			}
		case time.Now().After(deadline):
			b.Fatalf("%d of %d receivers lack seq %d %s after the last ack", behind, len(recvs), seq, fanoutSettle)
		}
		<-tick.C
	}
}

// fanSender posts to the room with a bounded window of unacknowledged sends.
type fanSender struct {
	ws       *websocket.Conn
	room     int64
	rate     float64       // messages/s; 0 means as fast as the window allows
	slots    chan struct{} // one per send in flight
	dead     chan struct{} // closed when the ack reader stops
	readDone chan struct{}
	sent     atomic.Int64 // sends written, across rounds
	err      error        // why the ack reader stopped; read after dead

	mu      sync.Mutex // guards acked, lastSeq, lastAck
	acked   int64
	lastSeq int64
	lastAck time.Time
}

func newFanSender(b *testing.B, srv *meshServer, tok string, room int64) *fanSender {
	b.Helper()
	ws := srv.dialMany(b, []string{tok})[0]
	s := &fanSender{ws: ws, room: room, slots: make(chan struct{}, fanoutWindow),
		dead: make(chan struct{}), readDone: make(chan struct{})}
	go s.readAcks()
	return s
}

// readAcks releases a slot per acknowledgement and checks that acks come
// back in the order of the sends with consecutive seqs.
func (s *fanSender) readAcks() {
	defer close(s.readDone)
	defer close(s.dead)
	var next int64 // the id number of the next expected ack
	for {
		_, b, err := s.ws.ReadMessage()
		if err != nil {
			s.err = err
			return
		}
		env, err := protocol.Decode(b)
		if err != nil {
			s.err = fmt.Errorf("undecodable frame %q: %w", b, err)
			return
		}
		switch env.Type {
		case protocol.TypeSystemError:
			s.err = fmt.Errorf("send refused: %s", env.Payload)
			return
		case protocol.TypeChatCreated:
		default:
			continue
		}
		var cc protocol.ChatCreated
		if err := env.Unmarshal(&cc); err != nil {
			s.err = err
			return
		}
		if want := "s" + strconv.FormatInt(next, 10); cc.RefID != want {
			s.err = fmt.Errorf("ack for %q, want %q next", cc.RefID, want)
			return
		}
		next++
		s.mu.Lock()
		if s.lastSeq != 0 && cc.Message.Seq != s.lastSeq+1 {
			s.mu.Unlock()
			s.err = fmt.Errorf("ack seq %d after %d: acknowledged seqs have a gap", cc.Message.Seq, s.lastSeq)
			return
		}
		s.acked++
		s.lastSeq, s.lastAck = cc.Message.Seq, time.Now()
		s.mu.Unlock()
		<-s.slots
	}
}

// sendRound is what one round of sends achieved.
type sendRound struct {
	start, lastAck time.Time
	acked, last    int64 // acks in this round; seq of the last
}

// round posts timed messages for d (one warm-up message if d is 0) and
// returns once every send is acknowledged. A paced message carries its
// scheduled send time, so a full window delays it visibly rather than
// hiding the wait (no coordinated omission).
func (s *fanSender) round(b *testing.B, d time.Duration) sendRound {
	b.Helper()
	s.mu.Lock()
	before := s.acked
	s.mu.Unlock()
	start := time.Now()
	stop := start.Add(d)
	for i := 0; i == 0 || time.Now().Before(stop); i++ {
		due := time.Now()
		if s.rate > 0 && d > 0 {
			if due = start.Add(time.Duration(float64(i) / s.rate * float64(time.Second))); !due.Before(stop) {
				break
			}
			time.Sleep(time.Until(due)) // pacing, not synchronisation
		}
		select {
		case s.slots <- struct{}{}:
		case <-s.dead:
			b.Fatalf("sender: %v", s.err)
		}
		text := "warmup"
		if d > 0 {
			if s.rate == 0 {
				due = time.Now()
			}
			text = "b " + strconv.FormatInt(due.UnixNano(), 10) + " " + fanoutPad
		}
		n := s.sent.Add(1) - 1
		id := "s" + strconv.FormatInt(n, 10)
		if err := benchSend(s.ws, protocol.TypeChatSend, id, protocol.ChatSend{RoomID: s.room, Text: text, ClientMsgID: id}); err != nil {
			b.Fatalf("sender: %v", err)
		}
	}
	timeout := time.After(fanoutSettle)
	for range fanoutWindow { // all slots back: nothing in flight
		select {
		case s.slots <- struct{}{}:
		case <-s.dead:
			b.Fatalf("sender: %v", s.err)
		case <-timeout:
			b.Fatalf("sender: sends unacknowledged %s after the last", fanoutSettle)
		}
	}
	for range fanoutWindow {
		<-s.slots
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sendRound{start: start, lastAck: s.lastAck, acked: s.acked - before, last: s.lastSeq}
}

// fanoutRound is one measured round: sends for d, then waits for every
// receiver to have the last message.
func fanoutRound(b *testing.B, srv *meshServer, st *fanoutState, snd *fanSender, recvs []*fanReceiver, d time.Duration) fanoutTotals {
	b.Helper()
	pid := srv.cmd.Process.Pid
	cpu0, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	self0 := selfCPU()
	sr := snd.round(b, d)
	waitReceivers(b, srv, st, recvs, sr.last)
	var end int64
	for _, r := range recvs {
		end = max(end, r.lastAt.Load())
	}
	cpu1, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return fanoutTotals{
		sendTime: sr.lastAck.Sub(sr.start), deliverTime: time.Unix(0, end).Sub(sr.start),
		acked: sr.acked, serverCPU: cpu1 - cpu0, clientCPU: selfCPU() - self0, lastSeq: sr.last,
	}
}

// fanoutTotals adds up rounds.
type fanoutTotals struct {
	sendTime, deliverTime time.Duration
	serverCPU, clientCPU  time.Duration
	acked, lastSeq        int64
}

func (t *fanoutTotals) add(r fanoutTotals) {
	t.sendTime += r.sendTime
	t.deliverTime += r.deliverTime
	t.serverCPU += r.serverCPU
	t.clientCPU += r.clientCPU
	t.acked += r.acked
	t.lastSeq = r.lastSeq
}

// report checks that every receiver got every acknowledged message once in
// order (first the warm-up, then everything up to the last ack) and reports.
func (t *fanoutTotals) report(b *testing.B, recvs []*fanReceiver, warmSeq int64) {
	b.Helper()
	var all latHist
	var got int64
	var problems []string
	for i, r := range recvs {
		got += min(r.timed, t.acked)
		switch {
		case r.bad != "":
			problems = append(problems, fmt.Sprintf("receiver %d: %s", i, r.bad))
		case r.err != nil:
			problems = append(problems, fmt.Sprintf("receiver %d: %v", i, r.err))
		case r.first != warmSeq || r.prev != t.lastSeq || r.timed != t.acked:
			problems = append(problems, fmt.Sprintf("receiver %d: seqs %d..%d with %d timed, want %d..%d with %d",
				i, r.first, r.prev, r.timed, warmSeq, t.lastSeq, t.acked))
		}
		all.merge(&r.hist)
	}
	want := t.acked * int64(len(recvs))
	lost := want - got
	b.ReportMetric(0, "ns/op") // a round lasts a fixed time; the rates below are the result
	b.ReportMetric(float64(want)/t.deliverTime.Seconds(), "deliveries/s")
	b.ReportMetric(float64(t.acked)/t.sendTime.Seconds(), "msgs/s")
	b.ReportMetric(ms(all.quantile(0.50)), "p50-ms")
	b.ReportMetric(ms(all.quantile(0.99)), "p99-ms")
	b.ReportMetric(ms(all.quantile(0.999)), "p99.9-ms")
	b.ReportMetric(ms(time.Duration(all.max)), "max-ms")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(100*t.serverCPU.Seconds()/t.deliverTime.Seconds(), "srv-cpu-%")
	b.ReportMetric(100*t.clientCPU.Seconds()/t.deliverTime.Seconds(), "cli-cpu-%")
	if want > 0 {
		b.ReportMetric(float64(t.serverCPU.Microseconds())/float64(want), "srv-us/delivery")
	}
	b.Logf("%d messages × %d sessions = %d deliveries in %s (sends took %s); latency p50 %s p99 %s max %s; "+
		"server CPU %s, client CPU %s (2 cores shared). Goal: ≥ 100000 deliveries/s, p99 < 50 ms.",
		t.acked, len(recvs), want, t.deliverTime.Round(time.Millisecond), t.sendTime.Round(time.Millisecond),
		all.quantile(0.5), all.quantile(0.99), time.Duration(all.max), t.serverCPU, t.clientCPU)
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
		}
		b.Fatalf("%d deliveries lost; not every receiver got every acknowledged message once in order:\n%s",
			lost, strings.Join(problems, "\n"))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
