package fedcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wellknownd/wellknownd/delegation"
)

// WellKnownResult is what /.well-known/matrix/server said.
type WellKnownResult struct {
	MServer string `json:"m.server"`
	// Result is "found", "absent" (no document: SRV and 8448 are used) or
	// "invalid" (a document servers cannot use).
	Result string `json:"result"`
	// CacheLifetime is how long remote servers keep the answer.
	CacheLifetime string `json:"CacheLifetime,omitempty"`
	Error         string `json:"error,omitempty"`
}

const (
	resultFound   = "found"
	resultAbsent  = "absent"
	resultInvalid = "invalid"
)

// wellKnownMaxSize is what servers read at most (gomatrixserverlib: 50 KB).
const wellKnownMaxSize = 50 * 1024

// resolve runs the spec's resolution: IP literal or explicit port first,
// then the well-known document, then SRV and 8448 for the delegated name
// (or the original one without a document).
func (c *checker) resolve(ctx context.Context, name delegation.ServerName) []Target {
	r := c.report
	if name.IP.IsValid() || name.Port != 0 {
		r.WellKnownResult.Result = resultAbsent
		c.skip("well-known server document", "not consulted: the server name has an IP address or an explicit port")
		return c.resolveTargets(ctx, name, &r.DNSResult)
	}
	delegated, ok := c.fetchServerWellKnown(ctx, name)
	if ok {
		return c.resolveTargets(ctx, delegated, &r.DNSResult)
	}
	return c.resolveTargets(ctx, name, &r.DNSResult)
}

func (c *checker) fetchServerWellKnown(ctx context.Context, name delegation.ServerName) (delegation.ServerName, bool) {
	const check = "well-known server document"
	wk := &c.report.WellKnownResult
	url := "https://" + name.Host + "/.well-known/matrix/server"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.httpClient(false).Do(req)
	if err != nil {
		wk.Result, wk.Error = resultAbsent, err.Error()
		c.fail(check, url, "fetching it failed: "+shortErr(err),
			"serve it over https on "+name.Host+":443 with a valid certificate (remote servers then fall back to SRV and port 8448)")
		return delegation.ServerName{}, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, wellKnownMaxSize+1))
	if resp.StatusCode != http.StatusOK {
		wk.Result = resultAbsent
		c.skip(check, fmt.Sprintf("%s answered %s: no delegation, remote servers use SRV and port 8448 of %s", url, resp.Status, name.Host))
		return delegation.ServerName{}, false
	}
	invalid := func(cause, fix string) (delegation.ServerName, bool) {
		wk.Result, wk.Error = resultInvalid, cause
		c.fail(check, url, cause, fix)
		return delegation.ServerName{}, false
	}
	if len(body) > wellKnownMaxSize {
		return invalid("it is larger than the 50 KB servers read", "keep only m.server in it")
	}
	var doc struct {
		MServer *string `json:"m.server"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return invalid("it is not valid JSON: "+err.Error(), `serve {"m.server": "matrix.example.com:443"} exactly, without trailing commas or comments`)
	}
	if doc.MServer == nil {
		return invalid("it has no m.server", `add "m.server": "host:port"`)
	}
	wk.MServer = *doc.MServer
	delegated, err := delegation.ParseServerName(*doc.MServer)
	if err != nil {
		return invalid(fmt.Sprintf("m.server %q %v", *doc.MServer, err), "m.server is host[:port] only, e.g. "+fixHostPort(*doc.MServer))
	}
	life := cacheLifetime(resp.Header)
	wk.Result, wk.CacheLifetime = resultFound, life.String()
	c.pass(check, fmt.Sprintf("m.server is %s; remote servers cache it for %s", delegated, life))
	return delegated, true
}

// cacheLifetime is how long remote servers keep a well-known answer:
// Cache-Control max-age (else Expires), 24 h when neither says, at most
// 48 h, as the spec recommends.
func cacheLifetime(h http.Header) time.Duration {
	life := 24 * time.Hour
	if exp, err := http.ParseTime(h.Get("Expires")); err == nil {
		life = time.Until(exp)
	}
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(k, "max-age") {
			if s, err := strconv.Atoi(v); err == nil {
				life = time.Duration(s) * time.Second
			}
		}
	}
	return max(0, min(life, 48*time.Hour)).Round(time.Second)
}

// fixHostPort strips a scheme and path from what was written in m.server.
func fixHostPort(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "matrix.example.com:443"
	}
	return s
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "Get ") {
		return s[i+2:]
	}
	return s
}
