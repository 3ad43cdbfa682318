package agent

import (
	"sync"

	"mesh/terminal"
)

// webGate decides what of a share's output goes to the server for
// browser watchers: nothing while none watches, so that the server holds
// nothing of the share but its name, and, when the first one arrives,
// the sharer's own recent screen first. With --no-web it never opens.
type webGate struct {
	relay *relay
	host  *terminal.Host
	noWeb bool

	mu   sync.Mutex // guards on, from; held across a push so that offsets stay in order
	on   bool
	from uint64 // output before this offset went out with the catch-up
}

// output passes one chunk of output on while browsers watch.
func (g *webGate) output(off uint64, data []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	end := off + uint64(len(data))
	if !g.on || end <= g.from {
		return
	}
	if off < g.from { // in the catch-up already
		data, off = data[g.from-off:], g.from
	}
	g.relay.push(off, data)
}

// watchers takes the number of browser watchers the server reports.
func (g *webGate) watchers(n int) {
	if g.noWeb {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case n > 0 && !g.on:
		off, data := g.host.Recent()
		for len(data) > 0 {
			k := min(len(data), relayMax)
			g.relay.push(off, data[:k])
			off, data = off+uint64(k), data[k:]
		}
		g.from, g.on = off, true
	case n == 0:
		g.on = false
	}
}
