package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// TestFederationListenerServesClientAPI: a client whose base_url names the
// federation port (as Dendrite's own 8448 served both APIs) reaches the
// client API there, over HTTP/2, with listen.federation_client_api; the
// federation API on that port still goes to its own upstream. Without the
// setting the port answers the client API 404 and nothing reaches the
// homeserver.
func TestFederationListenerServesClientAPI(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("federation_client_api=%v", on), func(t *testing.T) {
			client, federation := newRecorder(t), newRecorder(t)
			tlsAddr, fedAddr := freeport.Addr(t), freeport.Addr(t)
			_, fedPort, _ := net.SplitHostPort(fedAddr)
			more := []string{fmt.Sprintf("federation_client_api: %v", on)}
			edge := startEdge(t, edgeconf.New(
				edgeconf.Names("example.com", "matrix.example.com:"+fedPort, "https://matrix.example.com:"+fedPort),
				edgeconf.Listen("", tlsAddr, fedAddr, "", more...), edgeconf.Internal(t.TempDir()),
				edgeconf.Upstream(client.URL, "federation_url: "+federation.URL)), onListeners)
			roots := edge.localCA(t, fedAddr, "matrix.example.com")
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					if addr != "matrix.example.com:"+fedPort && addr != "example.com:"+fedPort {
						return nil, fmt.Errorf("the test dials only the federation port, not %s", addr)
					}
					return (&net.Dialer{}).DialContext(ctx, network, fedAddr)
				}}}
			get := func(url string) (*http.Response, string) {
				t.Helper()
				resp, err := c.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}
			base := "https://matrix.example.com:" + fedPort
			sync := "/_matrix/client/v3/sync?since=s1_2&timeout=30000"
			resp, body := get(base + sync)
			if on {
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || body != `{"ok":true}` {
					t.Fatalf("/sync on the federation port: %s %s %s", resp.Proto, resp.Status, body)
				}
				if got := received(client, sync); len(got) != 1 || got[0].host != "matrix.example.com:"+fedPort {
					t.Errorf("the homeserver got %+v, want one %s for matrix.example.com:%s", got, sync, fedPort)
				}
				// The documents too, as on 443: a client that looks again.
				if resp, body := get("https://example.com:" + fedPort + "/.well-known/matrix/client"); resp.StatusCode != http.StatusOK ||
					!strings.Contains(body, base) {
					t.Errorf("the client document on the federation port: %s %s", resp.Status, body)
				}
			} else {
				var e struct{ Errcode string }
				json.Unmarshal([]byte(body), &e)
				if got := received(client, sync); resp.StatusCode != http.StatusNotFound || e.Errcode != "M_UNRECOGNIZED" || len(got) != 0 {
					t.Fatalf("/sync on a federation-only port: %s %s; the homeserver got %+v", resp.Status, body, got)
				}
			}
			// Federation on the same port goes to the federation upstream
			// either way.
			if resp, _ := get(base + "/_matrix/federation/v1/version"); resp.StatusCode != http.StatusOK {
				t.Fatalf("federation on its port: %s", resp.Status)
			}
			if got := received(federation, "/_matrix/federation/v1/version"); len(got) == 0 {
				t.Errorf("the federation upstream got no /_matrix/federation/v1/version")
			}
			if got := received(client, "/_matrix/federation/v1/version"); len(got) != 0 {
				t.Errorf("the client upstream got federation requests: %+v", got)
			}
		})
	}
}

// received are the requests rec got for requestURI. The edge's own
// readiness probe and self-check reach the upstreams too, so a test picks
// out its own.
func received(rec *recorder, requestURI string) []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []recorded
	for _, r := range rec.reqs {
		if r.requestURI == requestURI {
			out = append(out, r)
		}
	}
	return out
}
