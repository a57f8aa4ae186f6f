package server

import (
	"strings"
	"testing"
)

// TestForwardedTrustFailsClosed: behind a trusted proxy, an X-Forwarded-For
// hop that is not a bare address makes the client unknown, and an unknown
// client is in no list; it used to come out as the proxy itself.
func TestForwardedTrustFailsClosed(t *testing.T) {
	up := newRecorder(t)
	edge := startEdge(t, edgeConfig(up.URL, "trusted_proxies: [127.0.0.1]", "expose_admin: [127.0.0.1]"))
	for _, xff := range []string{"6.6.6.6:4711", "unknown", "_hidden", "", "10.0.0.1, unknown", "not an address, 127.0.0.1"} {
		resp, b := send(t, edge, "GET", "matrix.example.com", "/_synapse/admin/v1/register", nil, "X-Forwarded-For", xff)
		if resp.StatusCode != 403 || !strings.Contains(b, "M_FORBIDDEN") {
			t.Errorf("X-Forwarded-For %q from the trusted proxy reached an admin path: %d %s", xff, resp.StatusCode, b)
		}
	}
	// The proxy itself, naming a client in expose_admin, still gets through.
	if resp, _ := send(t, edge, "GET", "matrix.example.com", "/_synapse/admin/v1/register", nil, "X-Forwarded-For", "127.0.0.1"); resp.StatusCode != 200 {
		t.Errorf("a trusted hop naming an exposed client: %d", resp.StatusCode)
	}
}

func TestProxyForwardedHeaders(t *testing.T) {
	up := newRecorder(t)
	untrusted := startEdge(t, edgeConfig(up.URL))
	send(t, untrusted, "GET", "matrix.example.com", "/_matrix/client/versions", nil,
		"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example", "Forwarded", "for=6.6.6.6", "X-Real-IP", "6.6.6.6")
	got := up.last(t)
	if xff := got.header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("untrusted peer: upstream X-Forwarded-For = %q, want only the peer 127.0.0.1", xff)
	}
	if got.header.Get("X-Forwarded-Proto") != "http" || got.header.Get("X-Forwarded-Host") != "matrix.example.com" {
		t.Errorf("untrusted peer: X-Forwarded-Proto %q Host %q", got.header.Get("X-Forwarded-Proto"), got.header.Get("X-Forwarded-Host"))
	}
	if got.header.Get("Forwarded") != "" || got.header.Get("X-Real-Ip") != "" {
		t.Errorf("untrusted peer's Forwarded/X-Real-IP reached the upstream: %v", got.header)
	}

	trusted := startEdge(t, edgeConfig(up.URL, "trusted_proxies: [127.0.0.0/8]"))
	send(t, trusted, "GET", "matrix.example.com", "/_matrix/client/versions", nil,
		"X-Forwarded-For", "203.0.113.7, 198.51.100.2", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "matrix.example.com")
	got = up.last(t)
	if xff := got.header.Get("X-Forwarded-For"); xff != "203.0.113.7, 198.51.100.2, 127.0.0.1" {
		t.Errorf("trusted peer: upstream X-Forwarded-For = %q", xff)
	}
	if got.header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("trusted peer: X-Forwarded-Proto = %q, want the proxy's https", got.header.Get("X-Forwarded-Proto"))
	}
}

// TestClientIPHeadersFromUntrustedPeers: the headers other proxies use to
// name the client never reach the homeserver from a peer that is not
// trusted; from a trusted one they pass.
func TestClientIPHeadersFromUntrustedPeers(t *testing.T) {
	up := newRecorder(t)
	hdrs := []string{"X-Client-IP", "6.6.6.6", "True-Client-IP", "6.6.6.6", "CF-Connecting-IP", "6.6.6.6",
		"X-Forwarded-Port", "1", "X-Forwarded-Server", "evil.example", "X-Real-IP", "6.6.6.6"}
	send(t, startEdge(t, edgeConfig(up.URL)), "GET", "matrix.example.com", "/_matrix/client/versions", nil, hdrs...)
	got := up.last(t)
	for i := 0; i < len(hdrs); i += 2 {
		if v := got.header.Get(hdrs[i]); v != "" {
			t.Errorf("untrusted peer's %s: %q reached the upstream", hdrs[i], v)
		}
	}
	send(t, startEdge(t, edgeConfig(up.URL, "trusted_proxies: [127.0.0.1]")), "GET", "matrix.example.com", "/_matrix/client/versions", nil, "CF-Connecting-IP", "203.0.113.9")
	if v := up.last(t).header.Get("CF-Connecting-IP"); v != "203.0.113.9" {
		t.Errorf("trusted proxy's CF-Connecting-IP: %q", v)
	}
}
