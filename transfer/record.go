package transfer

import (
	"encoding/binary"
	"os"
)

// A resume record is what a ".part" file remembers of its verified data, so
// that a rerun can answer the manifest at once instead of first hashing the
// whole .part (for a large file, the longest wait before data moves again).
// The sink writes it after every chunk but a file's last: the chunk size,
// the bytes on disk (offset), the file's modification time after that
// write, and the BLAKE3 of those bytes (the chunk's verified digest, so it
// costs no hashing). It is not made durable on its own: a record that does
// not match the file it sits on (size or mtime) is ignored, and the .part
// is hashed as before.
//
// Trusting it cannot let a wrong byte land. The plan offers the record's
// digest; the sender resumes only if that is the BLAKE3 of its own prefix.
// Meanwhile the receiver hashes its prefix from disk anyway (its whole-file
// hash needs it), on a goroutine of its own while the sender hashes its
// side, and before a new byte lands it checks that hash against the record:
// a .part that no longer holds what its record says fails the transfer with
// [ErrMismatch] and loses its record, so the rerun hashes it afresh. The
// record only moves the receiver's hashing off the path to the plan.

// recordMagic starts every record: the format's name and version.
const recordMagic = "mrc1"

const recordLen = 4 + 4 + 8 + 8 + 32

type resumeRecord struct {
	chunk  uint32
	offset int64
	mtime  int64 // unix nanoseconds
	sum    [32]byte
}

func (r resumeRecord) encode() (b [recordLen]byte) {
	copy(b[:], recordMagic)
	binary.BigEndian.PutUint32(b[4:], r.chunk)
	binary.BigEndian.PutUint64(b[8:], uint64(r.offset))
	binary.BigEndian.PutUint64(b[16:], uint64(r.mtime))
	copy(b[24:], r.sum[:])
	return b
}

func decodeRecord(b []byte) (resumeRecord, bool) {
	if len(b) != recordLen || string(b[:4]) != recordMagic {
		return resumeRecord{}, false
	}
	r := resumeRecord{
		chunk:  binary.BigEndian.Uint32(b[4:]),
		offset: int64(binary.BigEndian.Uint64(b[8:])),
		mtime:  int64(binary.BigEndian.Uint64(b[16:])),
	}
	copy(r.sum[:], b[24:])
	return r, true
}

// trusted reports whether r describes f's current data for a file of size
// bytes in chunks of chunk bytes: the resume can skip hashing before the plan.
func (r resumeRecord) trusted(fi os.FileInfo, chunk int, size int64) bool {
	return r.chunk == uint32(chunk) && r.offset > 0 && r.offset == fi.Size() && r.offset < size &&
		r.offset%int64(chunk) == 0 && r.mtime == fi.ModTime().UnixNano()
}
