// Package api is changesync's HTTP API: the audit trail of change events, the diff of a
// row, manual decisions on held changes and undo requests, with JWT authentication and
// roles, plus health, readiness, Prometheus metrics and the OpenAPI document.
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/pipeline"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/undo"
)

// Limits of one request. NOTE: the handler timeout is an estimate of how long the largest
// undo request should take; a time-window undo over many rows can exceed it. A release of
// POST /sync-manual/ goes on after it, up to defaultReleaseTimeout.
const (
	bodyLimit             = "1M"
	defaultHandlerTimeout = 60 * time.Second
	readHeaderTimeout     = 10 * time.Second
	readTimeout           = 30 * time.Second
	writeTimeoutMargin    = 15 * time.Second
	idleTimeout           = 2 * time.Minute
	shutdownTimeout       = 15 * time.Second
)

// Config sets up a Server. Cfg and Store are required. POST /sync-manual/ needs Applier
// and Pipeline, and POST /undo-request/ needs Undo; without them these endpoints return 503.
type Config struct {
	Cfg      *config.Config
	Store    *store.Store
	Applier  *apply.Applier
	Undo     *undo.Executor
	Pipeline string // name of the pipeline whose held changes POST /sync-manual/ decides
	// Gatherer is served at /metrics. Nil serves an empty registry.
	Gatherer prometheus.Gatherer
	// Log is the logger; nil logs nothing.
	Log *slog.Logger
	// Notify is what the notification destinations take, for the changes that
	// POST /sync-manual/ decides; nil writes no notifications.
	Notify pipeline.Wants
	// Replicating reports whether the replication connection streams, for /readyz; nil
	// leaves it out of the check.
	Replicating func() bool
	// Standby reports whether this process is a standby that waits for the pipeline's
	// active lock, which another process holds, for /readyz; nil means never.
	Standby func() bool
	// HandlerTimeout limits each request; 0 means 60 s. A release of POST /sync-manual/
	// that outlasts it goes on in the background, and the request returns 202.
	HandlerTimeout time.Duration
	// ReleaseTimeout limits a release of POST /sync-manual/; 0 means 30 minutes.
	ReleaseTimeout time.Duration
}

// Server is the HTTP API of one pipeline.
type Server struct {
	cfg       Config
	listen    string
	echo      *echo.Echo
	auth      *authenticator
	validator *requestValidator
	log       *slog.Logger

	handlerTimeout time.Duration
	releaseTimeout time.Duration
	// releases contains the keys of the running releases (releaseKey), so a second
	// request for the same change or thread is rejected while the first runs.
	releases sync.Map
	// backgroundCtx is the context of the releases, which run apart from their request.
	// cancelReleases cancels it, and stopBackground also waits for them through
	// background. backgroundMu orders each background.Add before the cancel.
	backgroundCtx    context.Context
	cancelBackground context.CancelFunc
	background       sync.WaitGroup
	backgroundMu     sync.Mutex
}

// New checks the configuration and builds the server. Without authentication configured,
// it rejects a listen address other than loopback. Close releases the JWKS refresh of a
// server that is never run.
func New(cfg Config) (*Server, error) {
	if cfg.Cfg == nil || cfg.Store == nil {
		return nil, errors.New("api: the configuration and the metadata store are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	listen := cfg.Cfg.API.Listen
	if listen == "" {
		listen = config.DefaultListen
	}
	auth, err := newAuthenticator(cfg.Cfg.API.Auth)
	if err != nil {
		return nil, err
	}
	if auth == nil {
		if err := checkLoopback(listen); err != nil {
			return nil, err
		}
	}

	validator, err := newRequestValidator()
	if err != nil {
		return nil, err
	}

	s := &Server{
		cfg: cfg, listen: listen, auth: auth, validator: validator, log: cfg.Log,
		handlerTimeout: cmp.Or(cfg.HandlerTimeout, defaultHandlerTimeout),
		releaseTimeout: cmp.Or(cfg.ReleaseTimeout, defaultReleaseTimeout),
	}
	s.backgroundCtx, s.cancelBackground = context.WithCancel(context.Background())
	if s.echo, err = s.newEcho(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ServeHTTP serves one request, so the server can be used as an http.Handler in tests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Close cancels the releases that run in the background, which roll back, waits for
// them, and stops the background refresh of the JWKS keys.
func (s *Server) Close() {
	s.stopBackground()
	if s.auth != nil {
		s.auth.close()
	}
}

// Run listens on the configured address and serves until ctx ends, then shuts down
// gracefully: it cancels the running releases of POST /sync-manual/, which roll back,
// and waits up to shutdownTimeout for open requests.
func (s *Server) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.listen)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, like Run.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.Close()
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      s.handlerTimeout + writeTimeoutMargin,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("api listening", "address", ln.Addr().String(), "auth", s.auth != nil)

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("api: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	// A request that waits for its release would keep Shutdown waiting, and the release
	// can run for up to releaseTimeout. Canceled first, the release ends at once and its
	// request returns 503 shutting_down. pgx closes the release's connection, and
	// PostgreSQL rolls its transaction back, freeing the pipeline's lock, once the
	// statement that runs ends.
	s.cancelReleases()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-done; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		return fmt.Errorf("api: shut down: %w", err)
	}
	s.log.Info("api stopped", "address", ln.Addr().String())
	return nil
}

// checkLoopback returns an error unless the host of listen is a loopback address or
// localhost.
func checkLoopback(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("api: invalid listen address %q: %w; use host:port such as 127.0.0.1:8080",
			listen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("api: listen address %q is not loopback and authentication is not configured: "+
		"set api.auth.jwt_secret_env (the name of an environment variable with an HS256 secret) or "+
		"api.auth.jwks_url, or listen on 127.0.0.1", listen)
}

// newEcho builds the router with its middleware and routes.
func (s *Server) newEcho() (*echo.Echo, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}))
	e.Use(middleware.BodyLimit(bodyLimit))
	e.Use(middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{
		Timeout: s.handlerTimeout, ErrorHandler: s.handleTimeout,
	}))

	// Each route checks the token first, then the request against openapi.json, and the
	// handlers still check what the document cannot express, such as exactly one scope.
	for _, r := range s.routes() {
		h, err := s.validator.wrap(r.method, r.path, r.handler)
		if err != nil {
			return nil, err
		}
		if r.role != roleNone {
			h = s.authorize(r.role, h)
		}
		e.Add(r.method, r.path, h)
		if r.slash {
			e.Add(r.method, r.path+"/", h)
		}
	}
	return e, nil
}

// route is one endpoint of the API. slash registers the path with a trailing slash too.
type route struct {
	method  string
	path    string
	slash   bool
	role    role
	handler echo.HandlerFunc
}

// routes lists every endpoint. The OpenAPI document must describe exactly these paths, and
// a test checks that it does.
func (s *Server) routes() []route {
	return []route{
		{http.MethodGet, "/change-events", true, roleViewer, s.listChangeEvents},
		{http.MethodGet, "/change-events/:id", true, roleViewer, s.getChangeEvent},
		{http.MethodPost, "/sync-manual", true, roleOperator, s.syncManual},
		{http.MethodPost, "/undo-request", true, roleAdmin, s.undoRequest},
		{http.MethodGet, "/undo-requests/:id", true, roleViewer, s.getUndoRequest},
		{http.MethodGet, "/status/:change_id", true, roleViewer, s.getStatus},
		{http.MethodGet, "/diff/:row_key", true, roleViewer, s.getDiff},
		{http.MethodGet, "/healthz", false, roleNone, s.healthz},
		{http.MethodGet, "/readyz", false, roleNone, s.readyz},
		{http.MethodGet, "/metrics", false, roleNone, echo.WrapHandler(
			promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))},
		{http.MethodGet, "/openapi.json", false, roleNone, serveOpenAPI},
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports ready when a ping of the metadata store in the target database succeeds
// and the replication connection streams.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.Pool.Ping(ctx); err != nil {
		s.log.Warn("readiness check failed", "error", err.Error())
		return newError(http.StatusServiceUnavailable, "not_ready",
			"the target database does not answer; check that it runs and that target.url is right")
	}
	if s.cfg.Standby != nil && s.cfg.Standby() {
		return newError(http.StatusServiceUnavailable, "standby",
			"this process is a standby of pipeline "+s.cfg.Pipeline+": another changesync process holds "+
				"the pipeline's active lock, and this one takes it over when that process stops. It serves "+
				"the API meanwhile")
	}
	if s.cfg.Replicating != nil && !s.cfg.Replicating() {
		return newError(http.StatusServiceUnavailable, "not_replicating",
			"the replication connection to the source is not streaming; the log says why "+
				"(look for reconnecting)")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
