// Package agent is the device side of mesh: the daemon (`mesh agent run`)
// and the agent commands (login, send-file, share-terminal, join-terminal),
// their configuration and state, and the link to the server.
//
// The daemon and the commands reach other agents through the QUIC endpoint
// of package peer: they feed it the sessions the server announces and run
// the session's kind (file transfer, terminal) over the stream it hands
// out. The byte-level protocols of those kinds live in the transfer and
// terminal packages; agent wires them to QUIC streams.
//
// agent reaches the server only over the network, as any client would: it
// never imports mesh/server or mesh/store.
package agent
