// Package peer is the QUIC layer through which agents reach each other
// directly: an agent's identity (key, self-signed certificate and its
// fingerprint), the sessions the server announced to this device, the
// [Endpoint] that accepts and dials them, and the control messages of a
// session's first stream.
//
// It works like this: the server announces a p2p session to both devices;
// the target keeps it in a [SessionCache]; the initiator's [Endpoint.Dial]
// connects over QUIC (ALPN "mesh-p2p/1", TLS 1.3, each side pinning the
// other's certificate to the fingerprint the server handed out) and redeems
// the session with P2P_HELLO on the first stream; the target's
// [Endpoint.Serve] answers P2P_OK or P2P_DENY and hands the stream, as a
// [Session], to the kind's protocol. Every agent's key and certificate come
// from [LoadOrCreateIdentity].
//
// peer does not talk to the server, learn of sessions, or know what a
// session carries: the agent package feeds it announcements and runs file
// transfer or terminal protocols over the streams it hands out. It imports
// nothing else of the agent.
package peer
