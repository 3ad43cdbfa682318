package server

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

//go:embed web
var webFS embed.FS

// webRoutes serves the embedded web app at /.
func (s *Server) webRoutes(e *echo.Echo) {
	sub, err := fs.Sub(webFS, "web")
	if err != nil {
		panic(err) // embedded at build time: a programmer error
	}
	files := echo.WrapHandler(http.FileServer(http.FS(sub)))
	// A not-found route, not GET /*: a catch-all GET would turn every unknown
	// POST into 405 and hide real 405s behind it.
	e.RouteNotFound("/*", func(c echo.Context) error {
		p := c.Request().URL.Path
		if allow := s.allowedMethods(p); len(allow) > 0 {
			c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
			return echo.ErrMethodNotAllowed
		}
		if strings.HasPrefix(p, "/api/") || p == "/api" || p == "/ws" {
			return echo.ErrNotFound
		}
		if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead {
			return echo.ErrNotFound
		}
		return files(c)
	})
}

// allowedMethods lists the methods routed for path; echo answers 404 rather
// than 405 when a not-found route exists, so the 405 is found here.
func (s *Server) allowedMethods(path string) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		c := s.echo.NewContext(nil, nil)
		s.echo.Router().Find(m, path, c)
		if c.Path() != "/*" && c.Path() != "" {
			allow = append(allow, m)
		}
	}
	return allow
}
