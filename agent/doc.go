// Package agent is the device side of mesh: the daemon (`mesh agent run`)
// and the agent commands (login, send-file, share-terminal, join-terminal),
// their configuration and state, and the QUIC endpoint through which agents
// reach each other directly.
//
// The peer layer works like this: the server announces a p2p session to both
// devices; the target keeps it in a [SessionCache]; the initiator's
// [Endpoint.Dial] connects over QUIC (ALPN "mesh-p2p/1", TLS 1.3, each side
// pinning the other's certificate to the fingerprint the server handed out)
// and redeems the session with P2P_HELLO on the first stream; the target's
// [Endpoint.Serve] answers P2P_OK or P2P_DENY and hands the stream to the
// kind's protocol. Every agent's key and self-signed certificate come from
// [LoadOrCreateIdentity].
//
// agent reaches the server only over the network, as any client would: it
// never imports mesh/server or mesh/store. The byte-level protocols of a
// session (file transfer, terminal) live in the transfer and terminal
// packages; agent wires them to QUIC streams.
package agent
