package server

// SetAfterUpgrade makes s call f right after each WebSocket upgrade has
// answered the client; call it before any session opens.
func SetAfterUpgrade(s *Server, f func()) { s.afterUpgrade = f }
