package server

// SetAfterUpgrade makes s call f right after each WebSocket upgrade has
// answered the client; call it before any session opens.
func SetAfterUpgrade(s *Server, f func()) { s.afterUpgrade = f }

// Absent reports whether userID has no session of their own open (what
// decides whether they get pushes).
func Absent(s *Server, userID int64) bool { return !s.hub.present(userID) }
