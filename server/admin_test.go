package server

import (
	"net/http"
	"testing"
)

// TestAdminListenerRefusesBrowsers: DNS rebinding (a foreign name for
// 127.0.0.1) reads nothing, and a cross-origin POST /reload is refused;
// the tools' own requests pass.
func TestAdminListenerRefusesBrowsers(t *testing.T) {
	admin := startEdge(t, edgeConfig("http://127.0.0.1:1"), withAdmin).admin
	do := func(method, host, path string, hdr ...string) int {
		req, _ := http.NewRequest(method, admin.URL+path, nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bound := admin.Listener.Addr().String()
	for _, c := range []struct {
		method, host, path string
		hdr                []string
		want               int
	}{
		{"GET", "rebind.attacker.example:9090", "/status", nil, 421},
		{"GET", "rebind.attacker.example", "/metrics", nil, 421},
		{"POST", bound, "/reload", []string{"Origin", "https://attacker.example"}, 403},
		{"POST", "localhost:9090", "/reload", []string{"Origin", "null"}, 403},
		{"GET", bound, "/status", nil, 200},
		{"GET", "localhost:9090", "/healthz", nil, 200},
		{"GET", "[::1]:9090", "/healthz", nil, 200},
		{"GET", bound, "/metrics", []string{"Origin", "https://attacker.example"}, 200}, // a read; CORS keeps the answer from the page
		{"POST", bound, "/reload", nil, 501},                                            // wellknownd reload: no Origin (no reloader in this test)
		{"POST", bound, "/reload", []string{"Origin", "http://" + bound}, 501},
	} {
		if got := do(c.method, c.host, c.path, c.hdr...); got != c.want {
			t.Errorf("%s %s Host %s %v: %d, want %d", c.method, c.path, c.host, c.hdr, got, c.want)
		}
	}
}
