package server

import (
	"net/http"
	"os"
	"strings"

	"github.com/labstack/echo/v4"
)

// iceServer is one entry of RTCPeerConnection's iceServers.
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// rtcConfig answers GET /api/rtc/config: the ICE servers calls use. With
// none configured, browsers on one network still connect directly.
func (s *Server) rtcConfig(c echo.Context) error {
	var stun, turn []string
	for _, u := range s.cfg.RTC.ICEServers {
		if strings.HasPrefix(u, "turn") {
			turn = append(turn, u)
		} else {
			stun = append(stun, u)
		}
	}
	servers := []iceServer{}
	if len(stun) > 0 {
		servers = append(servers, iceServer{URLs: stun})
	}
	if len(turn) > 0 {
		ts := iceServer{URLs: turn, Username: s.cfg.RTC.TURNUsername}
		if f := s.cfg.RTC.TURNPassFile; f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return err // logged; the browser hears "internal error"
			}
			ts.Credential = strings.TrimSpace(string(b))
		}
		servers = append(servers, ts)
	}
	return c.JSON(http.StatusOK, map[string]any{"ice_servers": servers})
}
