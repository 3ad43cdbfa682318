package agent

import (
	"context"

	"mesh/protocol"
)

const (
	// relayQueue is how many output chunks may wait for the server link.
	// When it is full, chunks are dropped: the server sees the offset jump
	// and restarts its ring there, and browsers go on from the next chunk.
	relayQueue = 256
	// relayMax is the most output one binary frame carries; the server
	// refuses frames over 64 KiB.
	relayMax = 48 << 10
)

// relay sends a share's output to the server for browser viewers without
// ever making the PTY wait for the server.
type relay struct {
	shareID string
	link    *link
	q       chan chunk
}

type chunk struct {
	off  uint64
	data []byte
}

func newRelay(shareID string) *relay {
	return &relay{shareID: shareID, q: make(chan chunk, relayQueue)}
}

// push queues a copy of one output chunk, or drops it if the queue is full.
func (r *relay) push(off uint64, data []byte) {
	select {
	case r.q <- chunk{off, append([]byte(nil), data...)}:
	default:
	}
}

// run writes queued output to the server until ctx is done, joining
// contiguous chunks that wait into one frame. While the link is down
// output is dropped (the server has no viewers for the share then).
func (r *relay) run(ctx context.Context) {
	for {
		var c chunk
		select {
		case <-ctx.Done():
			return
		case c = <-r.q:
		}
		data := c.data
	more:
		for len(data) < relayMax {
			select {
			case n := <-r.q:
				if n.off != c.off+uint64(len(data)) || len(data)+len(n.data) > relayMax {
					r.send(c.off, data)
					c, data = n, n.data
					continue
				}
				data = append(data, n.data...)
			default:
				break more
			}
		}
		r.send(c.off, data)
	}
}

func (r *relay) send(off uint64, data []byte) {
	r.link.sendBinary(protocol.AppendTermFrame(nil, protocol.TermFrame{Kind: protocol.TermOutput, ShareID: r.shareID, Offset: off, Data: data}))
}
