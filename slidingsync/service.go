package slidingsync

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Path is the MSC4186 endpoint the edge answers.
const Path = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// UnstableFeature is the /versions unstable_features key that tells
// clients (Element X, the Rust SDK, matrix-js-sdk) the endpoint is served.
const UnstableFeature = "org.matrix.simplified_msc3575"

// Config is what a Service needs, resolved from the edge's configuration.
type Config struct {
	// Upstream is the homeserver's client API (Dendrite's HTTP listener).
	Upstream *url.URL
	// Transport carries the polls, whoami and /messages calls there.
	Transport http.RoundTripper
	// SQLitePath is the embedded store's file; used when PostgresURL is "".
	SQLitePath string
	// PostgresURL, when set, is a PostgreSQL database shared by several
	// edges (postgres://user:pass@host/db).
	PostgresURL string
	// IdleTimeout stops a device's poller this long after its last
	// sliding-sync request.
	IdleTimeout time.Duration
	// EdgeID names this edge in the poller lease, unique among edges
	// sharing a store.
	EdgeID string
	Logger *slog.Logger
}

// Service answers MSC4186 requests and runs the pollers behind them.
type Service struct {
	cfg Config
}

// Open opens (creating or migrating) the store and returns a Service
// ready to answer; pollers start as devices ask.
func Open(cfg Config) (*Service, error) {
	return &Service{cfg: cfg}, nil
}

// Reconfigure points new polls and requests at another homeserver
// address (a reload that changed upstream.url); running pollers move on
// their next poll.
func (s *Service) Reconfigure(upstream *url.URL, transport http.RoundTripper) {}

// ServeHTTP answers POST Path.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, errorf(http.StatusMethodNotAllowed, codeUnrecognized, "Use POST"))
		return
	}
	if accessToken(r) == "" {
		writeError(w, errorf(http.StatusUnauthorized, codeMissingToken, "Missing access token"))
		return
	}
	http.Error(w, "not yet", http.StatusNotImplemented)
}

// accessToken is the request's token: the Authorization header, else the
// deprecated access_token query parameter that older clients still send.
func accessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("access_token")
}

// Close stops every poller (their positions are already stored) and
// closes the store.
func (s *Service) Close() error { return nil }
