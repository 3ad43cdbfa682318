// Package terminal is mesh's terminal-sharing engine. On the sharing side a
// [Host] takes a PTY's output ([Host.Pump]) and fans it out to any number of
// viewers, each over its own byte stream ([Host.Serve]), forwarding the
// keystrokes of viewers allowed to type. On the viewing side [Join] shows a
// share and sends keystrokes. A [Recorder] writes a share as an asciicast v2
// file.
//
// It owns the peer wire format below, the fan-out (a bounded queue and one
// writer per viewer, a ring of recent output for late joiners and for
// viewers that fell behind) and the asciicast encoding. It does not start
// processes or PTYs, does not touch the local terminal's modes (raw mode,
// SIGWINCH are the caller's), does not dial, accept or close streams, does
// not log, and imports nothing from mesh.
//
// # Wire contract
//
// Both directions of a peer stream carry frames:
//
//	type u8 | length u32 | payload (length bytes, at most MaxPayload)
//
// All integers are big-endian. A length above [MaxPayload] or an unknown
// type is a protocol error: the reader stops without allocating the
// payload. The frame types:
//
//	FrameHello  5  host → viewer  JSON object, always the first frame:
//	                              {"cols":80,"rows":24,"input":true,
//	                              "command":"bash","offset":N}
//	FrameOutput 1  host → viewer  offset u64, then raw output bytes
//	FrameInput  2  viewer → host  raw keystroke bytes
//	FrameResize 3  host → viewer  cols u16, rows u16
//	FrameExit   4  host → viewer  code i32, then the reason as UTF-8;
//	                              the last frame of the share
//
// In Hello, "input" says whether this viewer's keystrokes reach the shell
// (a host discards FrameInput from any other viewer without a word, so a
// read-only viewer's terminal answering a status query never reaches the
// shell); "command" may be absent; "offset" is the output offset at which
// the replay that follows starts.
//
// An output frame's offset counts the share's output bytes before its data.
// Right after Hello the host replays its ring of recent output (so a late
// joiner sees the current screen), then sends live output. Offsets only grow:
// a frame that starts past the end of the previous one marks a gap, which
// happens when a viewer fell so far behind that the output it lacked had
// already left the ring. A viewer sends nothing but FrameInput; anything
// else ends that viewer with a protocol error. After FrameExit the host
// sends nothing more, and either side may close the stream.
package terminal
