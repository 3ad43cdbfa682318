package transfer

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Errors from [Send] and [Receiver.Receive] wrap at most one
// of them; match with [errors.Is].
var (
	// ErrUnsafeName means at least one entry was refused: its name failed
	// [SafeRelPath] or clashed with another entry, or its kind is unknown.
	ErrUnsafeName = errors.New("unsafe name")
	// ErrMismatch means a chunk or a whole file did not match its BLAKE3.
	ErrMismatch = errors.New("blake3 mismatch")
	// ErrProtocol means the peer broke the wire contract (or speaks another version).
	ErrProtocol = errors.New("transfer protocol violation")
	// ErrNoSpace means the receiver's file system cannot hold the bytes still to come.
	ErrNoSpace = errors.New("not enough free space")
	// ErrCanceled means ctx was done; the error also wraps ctx.Err().
	ErrCanceled = errors.New("transfer canceled")
	// ErrStalled means the sender's data stopped getting through for
	// [Options].StallTimeout while it was sending: the receiver is gone,
	// or alive but no longer reading.
	ErrStalled = errors.New("receiver stopped answering")
)

// DefaultStallTimeout is [Options].StallTimeout when it is 0.
const DefaultStallTimeout = 5 * time.Second

// Values of [FileResult].Status.
const (
	StatusOK       = "ok"       // the receiver confirmed the whole-file BLAKE3
	StatusMismatch = "mismatch" // the data arrived but its BLAKE3 differed; nothing landed
	StatusRefused  = "refused"  // the entry was refused (unsafe or clashing name); nothing sent
	StatusSkipped  = "skipped"  // sender only: a symlink or special file, never sent
)

// Options tunes a transfer. The zero value is ready to use.
type Options struct {
	// ChunkSize is the data chunk size in bytes, [MinChunkSize]–[MaxChunkSize]
	// (0 means [DefaultChunkSize]). Only the sender's matters: the receiver
	// follows the manifest.
	ChunkSize int
	// Progress, if set, is called from the transferring goroutine at most once
	// per chunk (and once per file); it must be cheap and must not block.
	Progress func(Progress)
	// Now is the clock for Result.Duration; nil means time.Now.
	Now func() time.Time
	// StallTimeout is how long the sender's writes may get nothing through
	// while it sends data before [Send] gives up with [ErrStalled]; 0 means
	// [DefaultStallTimeout], negative never. It needs a stream with write
	// deadlines (net.Conn and *quic.Stream have them). Waits outside the
	// data (for the plan while the receiver hashes what it has, for the
	// summary while it syncs) are not timed here: a transport's own idle
	// timeout covers them. The receiver ignores it.
	StallTimeout time.Duration
}

// Progress is a snapshot of a running transfer. Byte counts include bytes
// skipped thanks to resume, so a resumed transfer starts part way.
type Progress struct {
	File      string // the file being transferred: its manifest path
	FileBytes int64  // bytes of File done
	FileSize  int64
	Bytes     int64 // bytes done over all files
	Total     int64 // bytes of all files that are not refused
	Files     int   // files in the transfer that are not refused
	FilesDone int   // files the receiver has confirmed (sender) or landed (receiver)
}

// Result is the outcome of a transfer, as far as it got.
type Result struct {
	// Files has the manifest's files (and refused directories) in manifest
	// order, then, for Send, the entries it skipped or refused itself.
	Files    []FileResult
	Bytes    int64 // file bytes that crossed the stream
	Resumed  int64 // bytes not sent because the receiver already had them
	Duration time.Duration
}

// FileResult is the outcome for one file.
type FileResult struct {
	// Name is where the file landed, relative to the receiver's inbox and
	// slash-separated; for refused and skipped entries it is the manifest path.
	// A file of a directory tree that did not land whole stays under
	// "NAME.part/…", and Name says so.
	Name string
	Size int64
	// BLAKE3 is the whole file's, hex, as the sender hashed it while reading
	// it (b3sum's); empty for a file whose data the transfer did not finish.
	BLAKE3 string
	// Status is one of the Status constants; it is empty for a file the
	// transfer did not reach.
	Status string
	Reason string // why a file is not ok
}

// verdict is the error a side returns for a transfer that ran to its end:
// nil if every file is ok or skipped.
func verdict(files []FileResult) error {
	var mismatch, refused, missing int
	for _, f := range files {
		switch f.Status {
		case StatusOK, StatusSkipped:
		case StatusMismatch:
			mismatch++
		case StatusRefused:
			refused++
		default:
			missing++
		}
	}
	switch {
	case mismatch > 0:
		return fmt.Errorf("%w: %d file(s) did not match", ErrMismatch, mismatch)
	case refused > 0:
		return fmt.Errorf("%w: %d entr(ies) refused", ErrUnsafeName, refused)
	case missing > 0:
		return fmt.Errorf("%w: %d file(s) never confirmed", ErrProtocol, missing)
	}
	return nil
}

// applyRenames applies the receiver's late renames of top-level names to files.
func applyRenames(files []FileResult, renamed []landing) {
	for _, rn := range renamed {
		for i := range files {
			f := &files[i]
			if f.Status == StatusRefused || f.Status == StatusSkipped {
				continue
			}
			if f.Name == rn.Name {
				f.Name = rn.As
			} else if rest, ok := strings.CutPrefix(f.Name, rn.Name+"/"); ok {
				f.Name = rn.As + "/" + rest
			}
		}
	}
}

// stallTimeout is StallTimeout with its default applied; <= 0 means never.
func (o *Options) stallTimeout() time.Duration {
	if o.StallTimeout == 0 {
		return DefaultStallTimeout
	}
	return o.StallTimeout
}

// clock returns o.Now or time.Now.
func (o *Options) clock() func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}
