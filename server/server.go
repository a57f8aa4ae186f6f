package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wellknownd/wellknownd/certs"
	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/supervise"
)

// Server is the running edge: its listeners and the site they serve.
type Server struct {
	log *slog.Logger
	// cfg is the configuration in force; Reload replaces it.
	cfg atomic.Pointer[config.Config]
	// reloadMu serialises reloads.
	reloadMu sync.Mutex
	up       upstreamDeps
	opts     options
	// site is swapped whole on reload; requests load it once each.
	site atomic.Pointer[site]
	// certs is the certificate source while Run runs; nil with tls off.
	certs atomic.Pointer[certs.Source]
	// httpsPort is the bound port of listen.https, for redirects.
	httpsPort atomic.Int32
	// sup runs and watches the stack behind the edge; nil without
	// supervise entries.
	sup *supervise.Supervisor
	m   *metrics
	// serving is true while the listeners accept.
	serving atomic.Bool
	// conns caps the public listeners' connections.
	conns *connLimiter
	// hist counts the public listeners' requests and errors per minute,
	// for the status page.
	hist history
	// started is when New built the server; bound is what Run listens
	// on, nil when it does not. Both for /status.
	started time.Time
	bound   atomic.Pointer[[]listenerStatus]
	// main, redirect and federation are the listeners' instrumented
	// handlers, made once.
	main, redirect, federation http.Handler
	// checks runs the self-check while Run runs.
	checks *selfChecker
	// ss is sliding sync (MSC4186) at the edge: its Service is open
	// while Run runs, when sliding_sync is enabled.
	ss *slidingSync
}

// New builds a server for a validated configuration. It builds the
// routes from the resolved values, but does not listen yet.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) *Server {
	s := &Server{log: log, up: newUpstreamDeps(log, newLimits(cfg.Limits)), started: time.Now()}
	s.cfg.Store(cfg)
	for _, o := range opts {
		o(&s.opts)
	}
	if len(cfg.Supervise) > 0 {
		s.sup = supervise.New(supervisedSpecs(cfg.Supervise), log, supervise.DefaultPolicy)
		s.up.ready = s.sup.Ready
	}
	s.conns = newConnLimiter(s.up.limits.maxConns, s.up.limits.sendTimeout, cmp.Or(s.opts.headerTimeout, headerTimeout))
	s.m = newMetrics(s.opts.version)
	s.m.reg.MustRegister(newStorageCollector(s.storageStatus))
	s.m.reg.MustRegister(newStateCollector(s))
	s.m.watchBuffers(s.up.budget)
	s.up.metrics = s.m
	s.up.encoders = newEncoderBudget(s.up.limits.encoders, s.m)
	s.up.static = newStaticShared(s.up.limits, s.up.encoders, s.m)
	s.ss = newSlidingSync(log, s.up.limits, s.up.transport, func() *url.URL { return s.config().Upstream.Target })
	s.up.slidingSync = s.ss
	s.m.reg.MustRegister(newSSCollector(s.ss))
	s.site.Store(newSite(cfg, s.up, s.m))
	s.checks = newSelfChecker(s, s.m)
	s.main = s.checks.echo.wrap(s.instrumented((*site).serve))
	s.redirect = s.instrumented(s.serveHTTPRedirect)
	s.federation = s.checks.echo.wrap(s.instrumented(serveFederation))
	return s
}

// ServeHTTP serves the current site as the main listeners do.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.main.ServeHTTP(w, r) }

// listener is one configured listening socket and what it serves.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
	tls  bool
	// capped: a public listener, under the connection limiter.
	capped bool
}

// Run listens on every configured address and serves until ctx is done,
// then stops accepting, waits up to shutdown_timeout for in-flight requests
// and returns. It returns early if a listener cannot be opened or fails.
func (s *Server) Run(ctx context.Context) error {
	if err := prepareBufferDir(s.up.limits.bufferDir); err != nil {
		return err
	}
	if err := s.ss.start(s.config()); err != nil {
		return err
	}
	// Stopped below before the supervised stack is; this is for the
	// early returns.
	defer s.ss.stop()
	lns, err := s.listen()
	if err != nil {
		return err
	}
	h3s, err := s.listenHTTP3(lns)
	if err != nil {
		closeAll(lns)
		return err
	}
	src, err := s.newCertificates(lns)
	if err != nil {
		closeAll(lns)
		shutdownHTTP3(context.Background(), h3s)
		return err
	}
	s.configure(lns, src, len(h3s) > 0)
	errc := make(chan error, len(lns)+len(h3s))
	s.serveHTTP3(h3s, lns, errc)
	var wg sync.WaitGroup
	for _, l := range lns {
		s.log.Info("listening", "listener", l.name, "addr", l.ln.Addr().String(), "tls", l.tls)
		wg.Go(func() {
			var err error
			if l.tls {
				err = l.srv.ServeTLS(l.ln, "", "")
			} else {
				err = l.srv.Serve(l.ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("listener %s on %s: %w", l.name, l.ln.Addr(), err)
			}
		})
	}
	s.serving.Store(true)
	var runErr error
	if src != nil {
		// The listeners accept now: ACME challenges can be answered.
		if runErr = src.Start(ctx); runErr != nil {
			s.log.Error("certificates", "err", runErr)
		}
	}
	if s.sup != nil {
		// Not ctx: the stack is stopped only after the listeners drain.
		s.sup.Start(context.Background())
	} else {
		probeCtx, stopProbe := context.WithCancel(ctx)
		defer stopProbe()
		go s.probeUpstream(probeCtx, cmp.Or(s.opts.probeInterval, probeInterval))
	}
	go s.releaseWhenQuiet(ctx)
	go s.conns.sweepHeaders(ctx)
	if runErr == nil {
		// Said once the certificates are in place: what was logged as
		// listening is now answered over TLS too.
		s.log.Info("serving", "hosts", s.config().Hosts)
		if s.opts.onServing != nil {
			s.opts.onServing()
		}
	}
	if runErr == nil && src != nil {
		var httpsAddr, fedAddr string
		for _, l := range lns {
			switch l.name {
			case "https":
				httpsAddr = l.ln.Addr().String()
			case "federation":
				fedAddr = l.ln.Addr().String()
			}
		}
		nw, ok := listenerNet(s.config().Listen, httpsAddr, fedAddr)
		if !ok || s.opts.selfCheckNet != nil {
			nw = s.opts.selfCheckNet.orWorld()
		}
		checkCtx, stopCheck := context.WithCancel(ctx)
		var checking sync.WaitGroup
		checking.Go(func() { s.checks.loop(checkCtx, nw) })
		defer checking.Wait()
		defer stopCheck()
	}
	if runErr == nil {
		select {
		case <-ctx.Done():
		case runErr = <-errc:
		}
	}
	s.serving.Store(false)
	s.bound.Store(nil)
	s.shutdown(lns, h3s)
	wg.Wait()
	// Its pollers stop before the homeserver does.
	s.ss.stop()
	if s.sup != nil {
		// In reverse start order, each process group gone before the next.
		s.sup.Stop()
	}
	if src != nil {
		src.Stop()
		s.certs.Store(nil)
	}
	return runErr
}

// configure gives each listener its server: the handler for what it
// serves and, for TLS listeners, the certificate source.
func (s *Server) configure(lns []listener, src certs.Source, h3 bool) {
	s.bound.Store(boundListeners(lns, h3))
	for i := range lns {
		l := &lns[i]
		var h http.Handler
		switch l.name {
		case "admin":
			h = s.adminHandler()
		case "metrics":
			h = s.metricsHandler()
		case "http":
			h = s.main
			if src != nil {
				h = src.HTTPHandler(s.redirect)
			}
		case "https":
			h = s.main
			s.httpsPort.Store(int32(l.ln.Addr().(*net.TCPAddr).Port))
		case "federation":
			h = s.federation
		}
		if h3 && (l.name == "https" || l.name == "federation") {
			// The UDP socket has the TCP listener's port.
			h = altSvc(h, l.ln.Addr().(*net.TCPAddr).Port)
		}
		l.srv = s.httpServer(h, l.capped)
		if l.name == "https" || l.name == "federation" {
			l.tls = true
			l.srv.TLSConfig = src.TLSConfig()
		}
	}
}

// serveHTTPRedirect is the plain-HTTP listener when TLS is on: the
// discovery documents are served as they are (a peer that asks over http
// gets an answer), everything else is sent to https.
func (s *Server) serveHTTPRedirect(st *site, w http.ResponseWriter, r *http.Request, hr *hostRoute) {
	if hr == nil {
		misdirected(w)
		return
	}
	if st.serveWellKnown(w, r, hr) {
		return
	}
	host := hostOnly(r.Host)
	if p := s.httpsPort.Load(); p != 0 && p != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(int(p)))
	} else if net.ParseIP(host) != nil && net.ParseIP(host).To4() == nil {
		host = "[" + host + "]"
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// serveFederation is listen.federation: the federation API only, unless
// listen.federation_client_api (see site.federation).
func serveFederation(st *site, w http.ResponseWriter, r *http.Request, hr *hostRoute) {
	if hr == nil {
		misdirected(w)
		return
	}
	st.federation(w, r, hr)
}

func (s *Server) shutdown(lns []listener, h3s []h3Listener) {
	timeout := s.config().ShutdownTimeout
	s.log.Info("shutting down", "drain_timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { shutdownHTTP3(ctx, h3s) })
	for _, l := range lns {
		wg.Go(func() {
			if err := l.srv.Shutdown(ctx); err != nil {
				s.log.Warn("requests still running after the drain timeout were cut", "listener", l.name, "err", err)
				l.srv.Close()
			}
		})
	}
	wg.Wait()
	s.up.h1.CloseIdleConnections()
}

// Supervisor is the supervisor of the stack behind the edge, or nil.
func (s *Server) Supervisor() *supervise.Supervisor { return s.sup }

func supervisedSpecs(entries []config.Supervised) []supervise.Spec {
	specs := make([]supervise.Spec, 0, len(entries))
	for _, e := range entries {
		specs = append(specs, supervise.Spec{
			Name: e.Name, Command: e.Command, Dir: e.Dir, Env: e.Env, After: e.After,
			Ready:      supervise.Probe{HTTP: e.Ready.URL, TCP: e.Ready.TCP},
			StopSignal: e.Signal, StopTimeout: e.StopTimeout, Credential: e.Credential,
			// Dendrite has no use for the DNS provider's credentials,
			// which the edge may have from its environment.
			Withhold: config.DNSSecretVariables(),
		})
	}
	return specs
}

// config is the configuration in force.
func (s *Server) config() *config.Config { return s.cfg.Load() }

// Serving reports whether the listeners accept: what the systemd watchdog
// is petted on.
func (s *Server) Serving() bool { return s.serving.Load() }

// Hosts are the names the configuration in force answers for.
func (s *Server) Hosts() []string { return s.config().Hosts }
