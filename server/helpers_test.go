package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// recorder is an upstream that records what crossed the wire to it.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, host, requestURI string
	header                   http.Header
	bodyLen                  int
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{r.Method, r.Host, r.RequestURI, r.Header.Clone(), int(n)})
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "https://only.example")
		w.Header().Set("Connection", "X-Upstream-Secret")
		w.Header().Set("X-Upstream-Secret", "hop")
		fmt.Fprintf(w, `{"ok":true}`)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) last(t *testing.T) recorded {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return rec.reqs[len(rec.reqs)-1]
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

// countingUpstream is a homeserver that counts the connections it has open
// and holds each request until release is closed (but for the edge's
// readiness probe, /_matrix/client/versions).
type countingUpstream struct {
	*httptest.Server
	open, peak atomic.Int32
	// held are the requests being held now.
	held    atomic.Int32
	release chan struct{}
}

func newCountingUpstream(t *testing.T) *countingUpstream {
	u := &countingUpstream{release: make(chan struct{})}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/_matrix/client/versions" {
			u.held.Add(1)
			<-u.release
			u.held.Add(-1)
		}
		w.Write([]byte(`{}`))
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			if n := u.open.Add(1); n > u.peak.Load() {
				u.peak.Store(n)
			}
		case http.StateClosed, http.StateHijacked:
			u.open.Add(-1)
		}
	}
	u.Start()
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.Close()
	})
	return u
}

// testEdge is a Server built for a test from a configuration, and where to
// reach it.
type testEdge struct {
	srv *Server
	// The main handler (what the public listeners serve) on a loopback
	// listener of its own; nil onListeners, where Run serves it.
	*httptest.Server
	// admin serves the admin handler likewise, withAdmin.
	admin *httptest.Server
	// stop ends Run and waits for it (onListeners); the end of the test
	// calls it too.
	stop func()
}

type edgeOptions struct {
	run, admin bool
	server     []Option
}

// An edgeOption changes how startEdge builds and serves the edge.
type edgeOption func(*edgeOptions)

// onListeners runs the Server (Run) on the listeners the configuration
// names, TLS and the admin listener included, until stop or the end of the
// test; with -v it logs at debug level to stderr.
func onListeners(o *edgeOptions) { o.run = true }

// withAdmin also serves the admin handler on a loopback listener (admin).
func withAdmin(o *edgeOptions) { o.admin = true }

// withOptions passes opts to New.
func withOptions(opts ...Option) edgeOption {
	return func(o *edgeOptions) { o.server = append(o.server, opts...) }
}

// startEdge builds the Server for cfgYAML and serves it: by default its
// main handler over httptest (no TLS, none of the configured listeners),
// onListeners through Run. It is closed or stopped when the test ends.
func startEdge(t testing.TB, cfgYAML string, opts ...edgeOption) *testEdge {
	t.Helper()
	var o edgeOptions
	for _, f := range opts {
		f(&o)
	}
	cfg, problems := config.Parse("edge.yaml", []byte(cfgYAML))
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatalf("config: %v", errs)
	}
	log := slog.New(slog.DiscardHandler)
	if o.run && testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := New(cfg, log, o.server...)
	e := &testEdge{srv: srv, stop: func() {}}
	if o.admin {
		e.admin = httptest.NewServer(srv.adminHandler())
		t.Cleanup(e.admin.Close)
	}
	if !o.run {
		e.Server = httptest.NewServer(srv)
		t.Cleanup(e.Server.Close)
		return e
	}
	e.stop = runServer(t, srv)
	return e
}

// runServer runs srv (Run, on its listeners) until the returned stop is
// called, or the test ends; stop waits for Run to return.
func runServer(t testing.TB, srv *Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// adminGET answers path from the edge's admin handler.
func (e *testEdge) adminGET(t testing.TB, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.srv.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1"+path, nil))
	return rec.Body.String()
}

// localCA waits until the edge, in tls.mode internal, serves on addr a
// certificate for name from its local CA, and returns the CA's roots.
func (e *testEdge) localCA(t testing.TB, addr, name string) *x509.CertPool {
	t.Helper()
	var roots *x509.CertPool
	wait.Until(t, "the local CA's certificate for "+name, 10*time.Second, func() error {
		src := e.srv.Certificates()
		if src == nil {
			return fmt.Errorf("not yet")
		}
		roots = src.Roots()
		_, err := handshake(addr, name, roots)
		return err
	})
	return roots
}

// edgeConfig is the test edge with a 1 KiB body cap, so that limits are
// cheap to cross.
func edgeConfig(upstream string, upstreamLines ...string) string {
	return edgeconf.Plain(upstream, "1KiB", upstreamLines...)
}

func send(t *testing.T, ts *testEdge, method, host, path string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// handshake connects to addr with SNI name, trusting only roots, and
// returns the verified leaf.
func handshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 3 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitCert waits until addr serves a certificate for name that verifies
// against roots, and returns it.
func waitCert(t testing.TB, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	wait.Until(t, "a valid certificate for "+name+" on "+addr, 60*time.Second, func() (err error) {
		leaf, err = handshake(addr, name, roots)
		return err
	})
	return leaf
}
