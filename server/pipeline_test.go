package server

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// TestHSTSDefaults: on by default (a year) where certificates are public,
// off for the local CA, and exactly what the config says when set.
func TestHSTSDefaults(t *testing.T) {
	for _, tc := range []struct{ tls, want string }{
		{"{mode: acme, email: a@example.com}", "max-age=31536000"},
		{"{mode: internal}", ""},
		{"{mode: internal, hsts: {max_age: 1h}}", "max-age=3600"},
		{"{mode: acme, email: a@example.com, hsts: {max_age: 0s}}", ""},
		{"{mode: acme, email: a@example.com, hsts: {max_age: 730h, include_subdomains: true}}", "max-age=2628000; includeSubDomains"},
		{`{mode: "off"}`, ""},
	} {
		cfg, problems := config.Parse("f.yaml", []byte("server_name: example.com\ndelegation: {server: \"matrix.example.com:443\", client_base_url: \"https://matrix.example.com\"}\ntls: "+tc.tls+"\n"))
		if errs := problems.Errors(); len(errs) > 0 {
			t.Fatalf("%s: %v", tc.tls, errs)
		}
		if got := cfg.TLS.HSTSHeader(); got != tc.want {
			t.Errorf("tls %s: Strict-Transport-Security %q, want %q", tc.tls, got, tc.want)
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
	edge := startEdge(t, fmt.Sprintf(`server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
listen: {http: %q, https: %q, federation: "", admin: ""}
tls: {mode: internal, storage: %q, hsts: {max_age: 24h}}
upstream: {url: %q}
`, httpAddr, tlsAddr, t.TempDir(), up.URL), onListeners)
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
