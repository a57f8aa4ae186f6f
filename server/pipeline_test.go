package server

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// TestHSTSDefaults: on by default (a year) where certificates are public,
// off for the local CA, and exactly what the config says when set.
func TestHSTSDefaults(t *testing.T) {
	for _, tc := range []struct {
		tls  []string // tls.mode, then further fields
		want string
	}{
		{[]string{"acme", "email: a@example.com"}, "max-age=31536000"},
		{[]string{"internal"}, ""},
		{[]string{"internal", "hsts: {max_age: 1h}"}, "max-age=3600"},
		{[]string{"acme", "email: a@example.com", "hsts: {max_age: 0s}"}, ""},
		{[]string{"acme", "email: a@example.com", "hsts: {max_age: 730h, include_subdomains: true}"}, "max-age=2628000; includeSubDomains"},
		{[]string{"off"}, ""},
	} {
		cfgYAML := edgeconf.New(edgeconf.Listen("127.0.0.1:0", "127.0.0.1:0", "", ""), edgeconf.TLS(tc.tls[0], tc.tls[1:]...))
		cfg, problems := config.Parse("f.yaml", []byte(cfgYAML))
		if errs := problems.Errors(); len(errs) > 0 {
			t.Fatalf("tls %v: %v", tc.tls, errs)
		}
		if got := cfg.TLS.HSTSHeader(); got != tc.want {
			t.Errorf("tls %v: Strict-Transport-Security %q, want %q", tc.tls, got, tc.want)
		}
	}
}

// TestHSTSOnTheWire: HTTPS answers for the served names carry the header
// once, the documents, errors and proxied answers alike (an upstream's own
// is dropped); plain HTTP never does.
func TestHSTSOnTheWire(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=1; preload")
		w.Write([]byte(`{"versions":["v1.11"]}`))
	}))
	defer up.Close()
	httpAddr, tlsAddr := freeport.Addr(t), freeport.Addr(t)
	edge := startEdge(t, edgeconf.New(
		edgeconf.Listen(httpAddr, tlsAddr, "", ""),
		edgeconf.Internal(t.TempDir(), "hsts: {max_age: 24h}"),
		edgeconf.Upstream(up.URL)), onListeners)
	roots := edge.localCA(t, tlsAddr, "matrix.example.com")
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "matrix.example.com", RootCAs: roots}}
	for _, path := range []string{"/.well-known/matrix/client", "/_matrix/client/versions", "/nothing/here"} {
		req, _ := http.NewRequest("GET", "https://"+tlsAddr+path, nil)
		req.Host = "matrix.example.com"
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != "max-age=86400" {
			t.Errorf("https %s (%d): Strict-Transport-Security %q", path, resp.StatusCode, got)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/.well-known/matrix/client", nil)
	req.Host = "example.com"
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
		t.Errorf("plain HTTP carries Strict-Transport-Security %q", got)
	}
}
