package server

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wellknownd/wellknownd/certs"
	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/supervise"
)

// The status page: GET / on the admin listener. One HTML file with its
// style and script inline, so it works offline and from a phone on the
// admin listener's tunnel; the script draws it from /status and
// /status/history and refreshes itself. The document it reads is the one
// `wellknownd status` prints, so the page, the terminal and a script see
// the same values.

//go:embed statuspage.html
var statusPageHTML []byte

// expiringWithin is how close to its expiry a certificate is shown as a
// problem: renewal (a third of the lifetime before, for ACME) should have
// happened long before.
const expiringWithin = 7 * 24 * time.Hour

// statusPage is the page, its Content-Security-Policy computed once from
// the inline blocks it allows: nothing else, no origin but its own for
// fetch.
type statusPage struct {
	body []byte
	csp  string
}

func newStatusPage() statusPage {
	return statusPage{body: statusPageHTML, csp: "default-src 'none'; script-src " + inlineHashes(statusPageHTML, "script") +
		"; style-src " + inlineHashes(statusPageHTML, "style") +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}
}

// inlineHashes is the CSP source list of every <tag>…</tag> block's hash.
func inlineHashes(page []byte, tag string) string {
	var out []string
	open, end := []byte("<"+tag+">"), []byte("</"+tag+">")
	for rest := page; ; {
		i := bytes.Index(rest, open)
		if i < 0 {
			break
		}
		rest = rest[i+len(open):]
		j := bytes.Index(rest, end)
		if j < 0 {
			break
		}
		sum := sha256.Sum256(rest[:j])
		out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		rest = rest[j:]
	}
	return strings.Join(out, " ")
}

func (p statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.Write(p.body)
}

// statusDoc is GET /status. Secrets never appear in it: the configuration
// summary names what is configured, never a password, a token or an
// environment.
type statusDoc struct {
	UpstreamReady bool               `json:"upstream_ready"`
	Supervised    []supervise.Status `json:"supervised"`
	// TLSStorage is where certificates are kept and whether it answers;
	// absent for tls.mode files and off.
	TLSStorage *certs.StorageStatus `json:"tls_storage,omitempty"`
	Version    string               `json:"version"`
	Now        time.Time            `json:"now"`
	Started    time.Time            `json:"started"`
	// Ready is /readyz; NotReady says why not.
	Ready        bool             `json:"ready"`
	NotReady     []string         `json:"not_ready"`
	Certificates []certStatus     `json:"certificates"`
	Listeners    []listenerStatus `json:"listeners"`
	Config       configSummary    `json:"config"`
	// Problems is everything above that needs the operator, in words:
	// what `wellknownd status` exits non-zero for. (The self-check's
	// failures are in its own key.)
	Problems []string `json:"problems"`
	// SelfCheck is the last self-check (docs/self-check.md); absent while
	// it is off or the server does not run.
	SelfCheck *selfCheckStatus `json:"self_check,omitempty"`
}

// certStatus is one name's certificate.
type certStatus struct {
	Name   string `json:"name"`
	Issuer string `json:"issuer,omitempty"`
	// NotBefore is when it was issued (the last renewal); NotAfter when
	// it expires; both null when there is no certificate for the name.
	NotBefore *time.Time `json:"not_before"`
	NotAfter  *time.Time `json:"not_after"`
	// RenewalDue is when a managed certificate is renewed (the last third
	// of its lifetime, as certmagic does without the CA's renewal
	// information; checked every 10 minutes, retried with backoff on
	// failure); null for tls.mode files, re-read when the files change.
	RenewalDue *time.Time `json:"renewal_due"`
	// State is ok, expiring (within 7 days), expired or missing.
	State string `json:"state"`
}

// listenerStatus is one listening socket.
type listenerStatus struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	TLS   bool   `json:"tls"`
	HTTP3 bool   `json:"http3"`
}

// configSummary is what the configuration in force does, without its
// secrets: URLs are redacted, supervised entries named only (their
// commands and environments may hold credentials), storage given by kind.
type configSummary struct {
	ServerName         string   `json:"server_name"`
	Delegated          string   `json:"delegated"`
	ClientBaseURL      string   `json:"client_base_url"`
	Hosts              []string `json:"hosts"`
	TLSMode            string   `json:"tls_mode"`
	TLSStorage         string   `json:"tls_storage,omitempty"`
	Upstream           string   `json:"upstream"`
	FederationUpstream string   `json:"federation_upstream,omitempty"`
	Supervised         []string `json:"supervised"`
	LogRequests        bool     `json:"log_requests"`
}

func boundListeners(lns []listener, h3 bool) *[]listenerStatus {
	out := make([]listenerStatus, 0, len(lns))
	for _, l := range lns {
		tls := l.name == "https" || l.name == "federation"
		out = append(out, listenerStatus{Name: l.name, Addr: l.ln.Addr().String(), TLS: tls, HTTP3: tls && h3})
	}
	return &out
}

// status builds the document as of now.
func (s *Server) status(now time.Time) statusDoc {
	cfg := s.config()
	doc := statusDoc{
		UpstreamReady: s.upstreamReady(), Supervised: []supervise.Status{},
		Version: s.opts.version, Now: now.UTC(), Started: s.started.UTC(),
		NotReady: s.notReady(), Certificates: []certStatus{}, Listeners: []listenerStatus{},
		Config: summarize(cfg), Problems: []string{}, SelfCheck: s.checks.status(),
	}
	doc.Ready = len(doc.NotReady) == 0
	if doc.NotReady == nil {
		doc.NotReady = []string{}
	}
	doc.Problems = append(doc.Problems, doc.NotReady...)
	if s.sup != nil {
		doc.Supervised = s.sup.Status()
	}
	for _, p := range doc.Supervised {
		switch {
		case p.CrashLooping:
			doc.Problems = append(doc.Problems, fmt.Sprintf("%s is crash-looping (%d restarts)%s", p.Name, p.Restarts, lastExit(p.LastExit)))
		case p.State != supervise.Ready && p.State != supervise.Starting && p.State != supervise.Waiting:
			doc.Problems = append(doc.Problems, fmt.Sprintf("%s is down (%s)%s", p.Name, p.State, lastExit(p.LastExit)))
		}
	}
	if st, ok := s.storageStatus(); ok {
		doc.TLSStorage = &st
		if !st.Reachable {
			doc.Problems = append(doc.Problems, fmt.Sprintf("certificate storage (%s) does not answer: %s", st.Kind, st.LastError))
		}
	}
	if src := s.Certificates(); src != nil {
		for _, c := range src.Status() {
			cs := certOf(c, cfg.TLS.Mode, now)
			doc.Certificates = append(doc.Certificates, cs)
			switch cs.State {
			case "expiring":
				doc.Problems = append(doc.Problems, fmt.Sprintf("the certificate for %s expires in %s (%s)", c.Name, days(c.NotAfter.Sub(now)), c.NotAfter.UTC().Format(time.RFC3339)))
			case "expired":
				doc.Problems = append(doc.Problems, fmt.Sprintf("the certificate for %s expired at %s", c.Name, c.NotAfter.UTC().Format(time.RFC3339)))
			}
		}
	}
	if b := s.bound.Load(); b != nil {
		doc.Listeners = *b
	}
	return doc
}

func certOf(c certs.Status, mode config.TLSMode, now time.Time) certStatus {
	cs := certStatus{Name: c.Name, Issuer: c.Issuer, State: "missing"}
	if c.NotAfter.IsZero() {
		return cs
	}
	na, nb := c.NotAfter.UTC(), c.NotBefore.UTC()
	cs.NotAfter, cs.NotBefore = &na, &nb
	if mode != config.TLSFiles {
		due := nb.Add(na.Sub(nb) * 2 / 3)
		cs.RenewalDue = &due
	}
	switch left := na.Sub(now); {
	case left <= 0:
		cs.State = "expired"
	case left < expiringWithin:
		cs.State = "expiring"
	default:
		cs.State = "ok"
	}
	return cs
}

func summarize(cfg *config.Config) configSummary {
	sum := configSummary{
		ServerName: cfg.ServerName, Delegated: cfg.Delegation.Server, Hosts: cfg.Hosts,
		TLSMode: string(cfg.TLS.Mode), Supervised: []string{}, LogRequests: cfg.Log.Requests,
	}
	if u := cfg.Delegation.BaseURL; u != nil {
		sum.ClientBaseURL = u.Redacted()
	}
	if u := cfg.Upstream.Target; u != nil {
		sum.Upstream = u.Redacted()
	}
	if u := cfg.Upstream.FederationTarget; u != nil && cfg.Upstream.FederationURL != "" {
		sum.FederationUpstream = u.Redacted()
	}
	if cfg.TLS.Mode == config.TLSACME || cfg.TLS.Mode == config.TLSInternal {
		sum.TLSStorage = "directory"
		if cfg.TLS.StorageKind == config.StoragePostgres {
			sum.TLSStorage = "postgres"
		}
	}
	for _, e := range cfg.Supervise {
		sum.Supervised = append(sum.Supervised, e.Name)
	}
	return sum
}

func lastExit(e *supervise.Exit) string {
	switch {
	case e == nil:
		return ""
	case e.Err != "":
		return ": " + e.Err
	case e.Signal != "":
		return ", last killed by " + e.Signal
	}
	return fmt.Sprintf(", last exit status %d", e.Code)
}

// days is a duration as an operator reads an expiry: days, or hours
// within the last two.
func days(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%.0f hours", d.Hours())
	}
	return fmt.Sprintf("%.0f days", d.Hours()/24)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
