package fedcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
)

// checkClient checks client discovery as a web client does it: the client
// document with CORS, its base_url, the versions endpoint behind it, and
// the support document when there is one.
func (c *checker) checkClient(ctx context.Context, name delegation.ServerName) bool {
	ok := true
	base := c.clientDocument(ctx, name, &ok)
	if base != "" {
		c.clientVersions(ctx, base, &ok)
	}
	c.supportDocument(ctx, name, &ok)
	return ok
}

func (c *checker) clientGET(ctx context.Context, url string) (*http.Response, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Origin", c.opts.Origin)
	resp, err := c.httpClient(false).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, body, err
}

// hasCORS: any Access-Control-Allow-Origin lets the checked origin read
// the answer only if it names it or "*"; the spec asks for "*".
func hasCORS(h http.Header) bool {
	v := h.Get("Access-Control-Allow-Origin")
	return v != ""
}

func (c *checker) clientDocument(ctx context.Context, name delegation.ServerName, ok *bool) string {
	const check = "well-known client document"
	url := "https://" + name.String() + "/.well-known/matrix/client"
	resp, body, err := c.clientGET(ctx, url)
	fail := func(cause, fix string) string {
		*ok = false
		c.fail(check, url, cause, fix)
		return ""
	}
	if err != nil {
		return fail("fetching it failed: "+shortErr(err), "serve it over https on "+name.Host+" with a valid certificate")
	}
	if resp.StatusCode == http.StatusNotFound {
		return fail("there is none (404): clients must be told the homeserver's URL by hand",
			`serve {"m.homeserver": {"base_url": "https://matrix.example.com"}} there (delegation.client_base_url)`)
	}
	if resp.StatusCode != http.StatusOK {
		return fail("it answered "+resp.Status, "serve the document with status 200")
	}
	if !hasCORS(resp.Header) {
		return fail("it has no Access-Control-Allow-Origin header, so web clients such as Element cannot read it",
			"add Access-Control-Allow-Origin: * to it (wellknownd does this on every answer)")
	}
	var doc struct {
		Homeserver *struct {
			BaseURL string `json:"base_url"`
		} `json:"m.homeserver"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fail("it is not valid JSON: "+err.Error(), "check it with wellknownd validate; a trailing comma is the usual cause")
	}
	if doc.Homeserver == nil || doc.Homeserver.BaseURL == "" {
		return fail("it has no m.homeserver.base_url", `add "m.homeserver": {"base_url": "https://..."}`)
	}
	if _, warn, err := delegation.ParseBaseURL(doc.Homeserver.BaseURL); err != nil {
		return fail("m.homeserver.base_url "+err.Error(), "make it an absolute https URL, e.g. https://matrix.example.com")
	} else if warn != "" {
		return fail("m.homeserver.base_url "+warn, "use an https URL clients elsewhere can reach")
	}
	c.pass(check, "base_url "+doc.Homeserver.BaseURL+", with CORS")
	return strings.TrimSuffix(doc.Homeserver.BaseURL, "/")
}

func (c *checker) clientVersions(ctx context.Context, base string, ok *bool) {
	const check = "client API versions"
	url := base + "/_matrix/client/versions"
	resp, body, err := c.clientGET(ctx, url)
	var v struct {
		Versions []string `json:"versions"`
	}
	switch {
	case err != nil:
		*ok = false
		c.fail(check, url, "fetching it failed: "+shortErr(err), "make sure base_url's host reaches wellknownd and the homeserver runs")
	case resp.StatusCode != http.StatusOK:
		*ok = false
		c.fail(check, url, "it answered "+resp.Status, "make sure wellknownd proxies /_matrix/client to the homeserver and it runs")
	case json.Unmarshal(body, &v) != nil || len(v.Versions) == 0:
		*ok = false
		c.fail(check, url, "the answer is not the client API's versions", "make sure base_url points at the homeserver, not a web site")
	case !hasCORS(resp.Header):
		*ok = false
		c.fail(check, url, "it has no Access-Control-Allow-Origin header, so web clients cannot use the API", "add CORS headers to the client API (wellknownd does)")
	default:
		c.pass(check, fmt.Sprintf("%d versions, up to %s, with CORS", len(v.Versions), v.Versions[len(v.Versions)-1]))
	}
}

func (c *checker) supportDocument(ctx context.Context, name delegation.ServerName, ok *bool) {
	const check = "well-known support document"
	url := "https://" + name.String() + "/.well-known/matrix/support"
	resp, body, err := c.clientGET(ctx, url)
	if err != nil || resp.StatusCode == http.StatusNotFound {
		c.skip(check, "none published")
		return
	}
	var s delegation.Support
	if err := json.Unmarshal(body, &s); err != nil {
		*ok = false
		c.fail(check, url, "it is not valid JSON: "+err.Error(), "check it with wellknownd validate")
		return
	}
	if errs := s.Check(); len(errs) > 0 {
		*ok = false
		c.fail(check, url, errs[0].Error(), "see delegation.support in docs/configuration-reference.md")
		return
	}
	c.pass(check, fmt.Sprintf("%d contacts", len(s.Contacts)))
}
