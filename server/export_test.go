package server

// SetAfterUpgrade makes s call f right after each WebSocket upgrade has
// answered the client; call it before any session opens.
func SetAfterUpgrade(s *Server, f func()) { s.afterUpgrade = f }

// Absent reports whether userID has no session of their own open (what
// decides whether they get pushes).
func Absent(s *Server, userID int64) bool { return !s.hub.present(userID) }

// TerminalKept is how many bytes of share id's output the server holds.
func (s *Server) TerminalKept(id string) int {
	s.terms.mu.Lock()
	defer s.terms.mu.Unlock()
	if sh := s.terms.shares[id]; sh != nil {
		return sh.out.n
	}
	return -1
}
