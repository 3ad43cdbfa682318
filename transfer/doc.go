// Package transfer is mesh's file-transfer engine: [Send] and
// [Receiver.Receive] move files and directory trees between two agents over
// one bidirectional byte stream (a *quic.Stream in production, any
// io.ReadWriter in tests), verifying every chunk and every whole file with
// BLAKE3, resuming interrupted transfers and never writing outside the
// receiver's inbox or over an existing name.
//
// It owns the wire format below and the files it writes. It does not own the
// stream (the caller dials, accepts and closes it, and authenticates the
// peer), does not log (it returns errors and reports progress through
// [Options].Progress) and imports nothing from mesh.
//
// # Wire contract, version 2
//
// Two kinds of frame share the stream. A control message is a 4-byte
// big-endian length n ≤ [MaxControl] followed by n bytes of a JSON object
// whose "type" names it ([WriteMsg], [ReadMsg]). A binary frame, used only
// by the sender in the data phase, starts with a 4-byte tag above
// MaxControl, so the first word always tells the two apart:
//
//	file frame   0x80000001  index u32, offset u64             (16 bytes)
//	chunk frame  0x80000002  index u32, offset u64, length u32,
//	                         blake3 [32]byte of the data       (52 bytes)
//	                         then length raw bytes
//	end frame    0x80000003  index u32, flags u32,
//	                         blake3 [32]byte of the whole file   (44 bytes)
//
// All integers are big-endian; index is the entry's position in the
// manifest. The conversation:
//
//  1. Sender → manifest, in one or more messages each under MaxControl:
//     {"type":"manifest","version":2,"chunk_size":1048576,"more":true,
//     "entries":[{"path":"tree/a.txt","kind":"file","size":3,"mode":420},
//     {"path":"tree","kind":"dir","mode":493}]}.
//     Paths are slash-separated and relative, and start with the top-level
//     name; kind is "file" or "dir"; mode holds permission bits only. No
//     hash: nothing is read before the first byte is sent. The last message
//     has no "more". A receiver refuses any other version with an abort
//     (version 1 put each file's BLAKE3 here, hashed before sending).
//  2. Receiver → plan, in one or more {"type":"plan","more":true,...}
//     messages: "tops" [{"name":"tree","as":"tree (1)"}] gives the name
//     each top-level name lands under, and "files" lists only entries that
//     are refused {"index":4,"refused":"reason"} or resume
//     {"index":2,"offset":8388608,"prefix":"<blake3 hex of the first offset
//     bytes>"}; every other file starts at 0. The offset is a multiple of
//     chunk_size, or the whole size when the receiver already has it all.
//     The sender resumes at the offset if the prefix matches its own file
//     (hashing that prefix is the start of its whole-file hash), and at 0
//     otherwise. Instead of a plan the receiver may abort, e.g.
//     with code "no_space" before any data moves.
//  3. Sender → data, without waiting for any answer: for each file that is
//     not refused, in manifest order, a file frame with the offset it
//     starts from (the planned one or 0), then chunk frames of chunk_size
//     bytes (the last one shorter) up to its size, then an end frame with
//     the BLAKE3 of the whole file (b3sum's), hashed as it was read; flags
//     bit 0 says the file changed while it was read (its size or mtime
//     moved), so it must not land. Then {"type":"done","files":N,"bytes":B}.
//  4. Receiver → while data flows, for each file after its last chunk:
//     {"type":"ack","index":2,"status":"ok"|"mismatch","name":"tree (1)/a.txt"},
//     where name is where it landed; after done,
//     {"type":"summary","ok":N,"mismatch":M,"refused":R,"bytes":B,
//     "renamed":[{"name":"tree","as":"tree.part"}]} ("renamed" lists trees
//     that landed elsewhere than planned, or stayed as a .part).
//
// Either side may send {"type":"abort","code":"mismatch"|"no_space"|
// "protocol"|"unsafe_name"|"error","reason":"..."} at a frame boundary and
// stop; the other side returns an error wrapping the matching sentinel.
// The sender reads everything the receiver says on a goroutine of its own,
// so neither side blocks on the other's flow control. While it sends data, a
// 64 KiB piece of it that does not get through within [Options].StallTimeout
// (5 s) means the receiver is gone: the sender stops with [ErrStalled].
//
// # Receiver rules
//
// Names: every path goes through [SafeRelPath]; an unsafe name, a duplicate
// or a path inside a file is refused for that entry alone (status
// "refused"; the rest of the transfer proceeds, but both sides return an
// error wrapping [ErrUnsafeName]). A top-level name that exists in the inbox
// lands as "name (1).ext", "name (2).ext" … ("tree (1)" for a directory).
// Directories are made with os.Mkdir after os.Lstat shows each component
// inside the inbox to be a real directory; files are opened with
// O_NOFOLLOW; only regular files and directories are ever created. These
// checks guard against what is in the inbox, not against a hostile local
// user racing the receiver: the inbox should be writable by its owner alone.
//
// Data: a lone file is written to "NAME.part"; a tree is built inside
// "TREE.part/". Each chunk is fed to the file's BLAKE3 hasher and the
// digest so far checked against the chunk frame's before the chunk is
// written, so a bad chunk aborts the transfer ([ErrMismatch]) leaving only
// verified data behind. After a file's last chunk its whole-file BLAKE3
// (that same hasher's, resumed prefix included) is compared with the end
// frame's; on a match a lone file is fsynced (a tree's files are not: see
// below), the file is given its mode less the receiver's umask
// ([ProcessUmask]: a bit survives only if the sender had it and the umask
// allows it), and a lone
// file is hard-linked to its name (which fails rather than overwrite) and its
// .part removed; on a mismatch the data is deleted. When the data ends, every
// tree whose files all matched gets its directory modes, less the umask
// likewise (directories the manifest does not list stay 0o700) and is renamed
// from TREE.part to its name, after one syncfs(2) of the inbox's file system
// has made every tree's files and directories durable (elsewhere than
// Linux, each file and directory is synced instead): a tree lands only
// whole, so a file's own fsync would buy nothing a crash could use. A ".part" left by an interrupted transfer is
// resumed by the next transfer of the same name that lands under the same
// name. While a file's chunks land, its .part keeps a resume record in the
// extended attribute "user.mesh.resume" (Linux): the verified length, the
// .part's mtime and the BLAKE3 of those bytes. A rerun whose .part still has
// that size and mtime offers the record's hash in the plan at once, and
// hashes the .part while the sender hashes its own prefix, checking the two
// before a new byte lands; without a usable record it hashes the .part
// before answering. The record is removed before the file lands.
package transfer
