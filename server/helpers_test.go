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

// newEdge serves cfgYAML (with the upstream's URL substituted for UPSTREAM)
// from a real listener.
func newEdge(t *testing.T, cfgYAML string) *httptest.Server { return newEdgeB(t, cfgYAML) }

func newEdgeB(t testing.TB, cfgYAML string) *httptest.Server {
	_, ts := newEdgeServer(t, cfgYAML)
	return ts
}

// newEdgeServer serves the edge's main handler for cfgYAML over httptest,
// and returns the Server too, for its metrics and admin handler.
func newEdgeServer(t testing.TB, cfgYAML string) (*Server, *httptest.Server) {
	t.Helper()
	cfg, problems := config.Parse("test.yaml", []byte(cfgYAML))
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatalf("config: %v", errs)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts
}

// runEdge starts a Server on cfgYAML and stops it when the test ends.
func runEdge(t testing.TB, cfgYAML string, opts ...Option) (*Server, func()) {
	t.Helper()
	cfg, problems := config.Parse("acme.yaml", []byte(cfgYAML))
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatalf("config: %v", errs)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	stop := func() {
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
		case <-time.After(20 * time.Second):
			t.Errorf("server did not stop")
		}
	}
	t.Cleanup(stop)
	return srv, stop
}

// edgeConfig is the test edge with a 1 KiB body cap, so that limits are
// cheap to cross.
func edgeConfig(upstream string, upstreamLines ...string) string {
	return edgeconf.Plain(upstream, "1KiB", upstreamLines...)
}

func send(t *testing.T, ts *httptest.Server, method, host, path string, body io.Reader, hdr ...string) (*http.Response, string) {
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

// adminGET answers path from the server's admin handler.
func adminGET(t *testing.T, srv *Server, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1"+path, nil))
	return rec.Body.String()
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
