// Package server is mesh's control plane: the echo HTTP API, authentication,
// and the embedded web app. It owns the HTTP body types and reaches the
// database only through package store. It does not move file bytes, nor
// terminal bytes between agents (they do that between themselves over
// QUIC); it relays a shared terminal's bytes only to browser watchers.
//
// Files hold one feature each, its HTTP and WebSocket handlers together:
// rooms and chat, calls, p2p sessions and transfers, terminals, push,
// accounts and devices; dispatch.go routes WebSocket requests, conn.go and
// hub.go carry them. Handlers refuse with a refusal (errors.go): its kind
// becomes the HTTP status in httpError and the WebSocket code in dispatch.
//
// Users meet phone notifications as "notify" (the [notify] table,
// /api/notify, mesh notify) and those names stay; in code one message to
// a phone is a push: the pusher queues and sends pushes, and push*.go,
// their handlers and types say push. Only names bound to the user's word
// keep it: NotifyConfig (the [notify] table), store.NotifySettings, and
// the Gotify client's package path, server/notify/gotify.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"mesh/store"
)

// Server is one `mesh serve`. Create it with [New], run it with [Serve].
type Server struct {
	cfg           Config
	store         *store.Store
	log           *slog.Logger
	echo          *echo.Echo
	key           signingKey
	admission     store.Admission
	throttle      *throttle
	dummyHash     func() string // compared against for unknown users
	hub           *hub
	terms         terminals           // shared terminals that browsers watch
	upgrader      *websocket.Upgrader // for people's sessions
	agentUpgrader *websocket.Upgrader // for devices' sessions: bigger reads
	chatIn        chan sendReq        // to runChat
	chatQuit      chan struct{}       // closed once no session can send any more
	push          *pusher
	pushIn        chan pushJob      // stored messages, to runPushFeed
	acme          *autocert.Manager // nil unless certificates come from ACME
	rtc           *rtc              // the embedded STUN/TURN server
	relay         *relay            // QUIC datagrams between agents that cannot meet directly

	afterUpgrade func() // tests widen the upgrade window with it; nil otherwise
}

// New builds a server over an open store. The store stays the caller's to
// close. With TLS configured it loads the certificate files (or prepares
// the ACME cache) now, and its errors name the file or key that failed.
func New(cfg Config, st *store.Store, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc, acme, err := newTLS(cfg, log.With("component", "tls"))
	if err != nil {
		return nil, err
	}
	adm, _ := cfg.Auth.admission() // checked by Validate
	key, err := loadOrCreateKey(cfg.secretFile(), "token key", log)
	if err != nil {
		return nil, err
	}
	// The hash unknown users are compared against costs as much as a real
	// one (130 ms at cost 11): made in the background, so that the server
	// listens at once; the first login of an unknown user waits for it.
	dummy := make(chan string, 1)
	go func() {
		h, err := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), cfg.Auth.BcryptCost)
		if err != nil { // only for a cost outside 4..31, which Validate refused
			panic(fmt.Sprintf("prepare password check: %v", err))
		}
		dummy <- string(h)
	}()
	s := &Server{
		cfg: cfg, store: st, log: log, key: key, admission: adm,
		throttle: newThrottle(throttleWindow), dummyHash: sync.OnceValue(func() string { return <-dummy }),
		hub:      newHub(st, log.With("component", "hub"), cfg.now),
		terms:    terminals{shares: make(map[string]*share)},
		upgrader: newUpgrader(512), agentUpgrader: newUpgrader(64 << 10),
		chatIn: make(chan sendReq, 1024), chatQuit: make(chan struct{}),
		pushIn: make(chan pushJob, 4096),
		acme:   acme,
	}
	s.push = newPusher(cfg.Notify, st, log)
	s.relay = newRelay(st, s.hub, log.With("component", "relay"), cfg.now, cfg.HTTP.RelayUserMbps)
	s.echo = s.routes()
	if tc != nil {
		s.echo.Server.TLSConfig = tc
		// Failed handshakes (scanners, plain http:// to this port) are routine.
		s.echo.Server.ErrorLog = slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelDebug)
	}
	// Last: it opens the TURN port, which only Serve closes.
	if s.rtc, err = newRTC(cfg, st, log); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.httpError
	e.IPExtractor = s.ipExtractor()
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("handler panicked", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(s.logRequests())
	e.Use(securityHeaders)
	e.Use(middleware.BodyLimit("64KiB")) // KiB: "64K" would be 64,000 bytes

	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	api := e.Group("/api")
	api.POST("/auth/register", s.register)
	api.POST("/auth/login", s.login)
	api.GET("/me", s.me, s.requireUser)
	api.POST("/me/password", s.changePassword, s.requireUser)
	api.GET("/rooms", s.listRooms, s.requireUser)
	api.POST("/rooms", s.createRoom, s.requireUser)
	api.POST("/rooms/direct", s.directRoom, s.requireUser)
	api.GET("/rooms/:id", s.getRoom, s.requireUser)
	api.POST("/rooms/:id/members", s.addRoomMember, s.requireUser)
	api.GET("/rooms/:id/messages", s.roomMessages, s.requireUser)
	api.POST("/devices", s.enrollDevice, s.requireUser)
	api.GET("/devices", s.listDevices, s.requireUser)
	api.GET("/devices/:id", s.getDevice, s.requireAgent)
	api.DELETE("/devices/:id", s.revokeDevice, s.requireUser)
	api.POST("/p2p/sessions", s.createSession, s.requireAgent)
	api.GET("/p2p/sessions/:id", s.getSession, s.requireAgent) // the low-level send-file asks for the pin
	api.GET("/transfers", s.listTransfers, s.requireUser)
	api.GET("/terminals", s.listTerminals, s.requireAgent)
	api.GET("/rtc/config", s.rtcConfig, s.requireAgent) // agents gather candidates with its STUN
	api.GET("/notify", s.getPushSettings, s.requireUser)
	api.PUT("/notify", s.putPushSettings, s.requireUser)
	api.POST("/notify/test", s.testPush, s.requireUser)
	api.PUT("/rooms/:id/mute", s.muteRoom, s.requireUser)
	e.GET("/ws", s.websocket, s.requireSocket)
	s.webRoutes(e)
	return e
}

// ipExtractor believes X-Forwarded-For only from configured proxies; trusting
// it from anyone would let a client dodge login throttling.
func (s *Server) ipExtractor() echo.IPExtractor {
	if len(s.cfg.HTTP.TrustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range s.cfg.HTTP.TrustedProxies {
		_, n, _ := net.ParseCIDR(p) // checked by Validate
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

func (s *Server) logRequests() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogMethod: true, LogURIPath: true, LogLatency: true, LogRemoteIP: true,
		HandleError: true, // else a refused request is logged with status 200
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelDebug
			if v.Status >= 400 && v.Status < 500 {
				level = slog.LevelInfo
			}
			s.log.Log(c.Request().Context(), level, "request",
				"method", v.Method, "path", v.URIPath, "status", v.Status,
				"latency_ms", float64(v.Latency.Microseconds())/1000, "ip", v.RemoteIP)
			return nil
		},
	})
}

// Handler is the server's HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve handles HTTP on ln (HTTPS when tls_cert or acme_domains is set)
// until ctx is done, then lets in-flight requests finish (up to
// server.shutdown_timeout), closes every WebSocket, stores the chat
// messages already received, and returns. It closes ln. Call it once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	s.echo.Listener = ln
	chatDone := make(chan struct{})
	go func() { s.runChat(); close(chatDone) }()
	g.Go(func() error { s.hub.pingAll(ctx); return nil })
	g.Go(func() error { s.runPushFeed(ctx); return nil })
	g.Go(func() error { s.push.run(ctx); return nil })
	g.Go(func() error { s.watchCredentials(ctx); return nil })
	g.Go(func() error { return s.rtc.run(ctx, s.log) })
	g.Go(func() error { s.relay.run(ctx); return nil })
	g.Go(func() error {
		if err := s.serveHTTP(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
		defer cancel()
		s.log.Info("shutting down", "timeout", s.cfg.HTTP.ShutdownTimeout)
		err := s.echo.Shutdown(sctx)
		s.hub.closeAll() // Shutdown does not see hijacked connections
		close(s.chatQuit)
		<-chatDone
		if err != nil {
			return fmt.Errorf("shut down http: %w", err)
		}
		return nil
	})
	return g.Wait()
}

// serveHTTP runs the HTTP server on ln, over TLS when New set a TLS config;
// it returns http.ErrServerClosed after Shutdown.
func (s *Server) serveHTTP(ln net.Listener) error {
	if s.echo.Server.TLSConfig == nil {
		return s.echo.Server.Serve(ln)
	}
	return s.echo.Server.ServeTLS(ln, "", "") // certificates come from TLSConfig; adds h2
}
