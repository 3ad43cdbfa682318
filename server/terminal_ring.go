package server

// ringSize is how much recent output a share keeps for late watchers.
const ringSize = 256 << 10

// outputRing keeps the last ringSize bytes of a share's output. The byte at
// output offset o sits at buf[o%ringSize], so writing never moves bytes.
type outputRing struct {
	buf []byte // ringSize bytes, allocated by the first write
	n   int    // bytes held, at most ringSize
	end uint64 // output offset just past the newest byte
}

// start is the output offset of the oldest byte held.
func (r *outputRing) start() uint64 { return r.end - uint64(r.n) }

// restart empties the ring, which continues at output offset off.
func (r *outputRing) restart(off uint64) { r.n, r.end = 0, off }

// write appends p, forgetting the oldest bytes beyond ringSize.
func (r *outputRing) write(p []byte) {
	if len(p) == 0 {
		return
	}
	if r.buf == nil {
		r.buf = make([]byte, ringSize)
	}
	if len(p) > ringSize {
		r.end += uint64(len(p) - ringSize)
		p = p[len(p)-ringSize:]
	}
	for len(p) > 0 {
		k := copy(r.buf[r.end%ringSize:], p)
		p, r.end, r.n = p[k:], r.end+uint64(k), min(r.n+k, ringSize)
	}
}

// bytes returns a copy of what the ring holds, oldest first.
func (r *outputRing) bytes() []byte {
	if r.n == 0 {
		return nil
	}
	out := make([]byte, r.n)
	k := copy(out, r.buf[r.start()%ringSize:])
	copy(out[k:], r.buf)
	return out
}
