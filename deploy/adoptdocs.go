package deploy

// adoptdocs.go decides what the documents say once wellknownd serves
// them. The truth is what the server name's host serves today: remote
// servers have cached its m.server (up to 48 hours), and every client that
// logged in keeps the base_url it was given for as long as its login lasts
// (Element never looks at /.well-known again). So adopt keeps both
// documents as they are, ports included, and only -delegate changes them;
// dendrite.yaml's well_known_* settings are a fallback, and are often the
// server name itself (as guides told people to set them), which says
// nothing about where the server is.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/fedcheck"
	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

// ServedDocument is a document as wellknownd will serve it, for the plan.
type ServedDocument struct {
	URL  string
	Body string
	// Notes say where each value came from, and how the document compares
	// with what is served today.
	Notes []string
}

// todayClient is the client document served today, taken apart.
type todayClient struct {
	baseURL, identity string
	// extra are its other keys, as a JSON object ("" for none).
	extra string
}

// delegation decides m.server and the client document, and which lines of
// dendrite.yaml disagree with them.
func (p *adoptPlan) delegation(d yamlfile.File, o AdoptOptions) error {
	wkServer, wkServerLine := d.Get("global.well_known_server_name")
	wkClient, wkClientLine := d.Get("global.well_known_client_name")
	name, _ := delegation.ParseServerName(p.ServerName)
	if o.Fetch != nil {
		server, client := o.Fetch(name)
		p.PublishedServer, p.PublishedClient = &server, &client
	}
	mServer := p.todayServer()
	client := p.todayClient()
	// A setting of dendrite.yaml that names the server name's own host
	// says nothing about where the server is.
	elsewhere := func(host string) bool { return host != "" && !strings.EqualFold(host, name.Host) }
	wkServerName, wkServerErr := delegation.ParseServerName(wkServer)
	wkClientURL, _, wkClientErr := delegation.ParseBaseURL(wkClient)

	var serverSource string
	switch {
	case o.Delegate != "":
		sn, err := delegation.ParseServerName(o.Delegate)
		switch {
		case err != nil:
			return fmt.Errorf("-delegate %q %w", o.Delegate, err)
		case sn.IP.IsValid():
			return fmt.Errorf("-delegate %q: give the homeserver's host name (with :8448 if peers are sent there); wellknownd needs a name to get a certificate for", o.Delegate)
		case sn.Port != 0 && sn.Port != 443 && sn.Port != 8448:
			return fmt.Errorf("-delegate %q: wellknownd listens on 443 and 8448; give the host alone (port 443) or HOST:8448", o.Delegate)
		}
		p.MServer = sn.Host + ":443"
		if sn.Port != 0 {
			p.MServer = o.Delegate
		}
		serverSource = "-delegate"
	case mServer != "":
		p.MServer, serverSource = mServer, "as "+p.PublishedServer.URL+" serves it today (remote servers have it cached)"
	case wkServerErr == nil && elsewhere(wkServerName.Host):
		p.MServer, serverSource = wkServer, fmt.Sprintf("%s:%d global.well_known_server_name", d.Path, wkServerLine)
	case client != nil && elsewhere(hostOf(client.baseURL)):
		p.MServer, serverSource = hostOf(client.baseURL)+":443", "the host of base_url, which "+p.PublishedClient.URL+" serves today"
	case wkClientErr == nil && elsewhere(wkClientURL.Hostname()):
		p.MServer, serverSource = wkClientURL.Hostname()+":443", fmt.Sprintf("the host of %s:%d global.well_known_client_name", d.Path, wkClientLine)
	default:
		return dendriteProblem(d, wkServerLine, "global.well_known_server_name", "%s; nothing says which host serves %s: %s. Give it with -delegate HOST[:PORT], what %s/.well-known/matrix/server names today (e.g. -delegate matrix.%s:8448 if peers are sent to 8448); or, if %s's DNS already points at this machine, -resolve %s:443:ADDR to fetch the documents from where they are served",
			describeSetting(wkServer, name.Host), p.ServerName, p.unreachable(), p.ServerName, p.ServerName, p.ServerName, p.ServerName)
	}
	delegated, _ := delegation.ParseServerName(p.MServer)
	p.Delegate = delegated.Host
	if delegated.Port != 443 && delegated.Port != 8448 && delegated.Port != 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("m.server %q names port %d, and wellknownd listens on 443 and 8448: federation reaches it only if a port mapping sends %d to 8448 here; or give -delegate %s:8448 (peers follow the new document once their cache of the old one expires, up to 48h)", p.MServer, delegated.Port, delegated.Port, delegated.Host))
	}

	var clientSource string
	switch {
	case o.Delegate != "":
		p.BaseURL, clientSource = "https://"+delegated.Host, "-delegate"
		if delegated.Port == 8448 {
			p.BaseURL += ":8448"
		}
	case client != nil:
		p.BaseURL, clientSource = client.baseURL, "as "+p.PublishedClient.URL+" serves it today (clients that logged in keep it)"
	case wkClientErr == nil && elsewhere(wkClientURL.Hostname()):
		p.BaseURL, clientSource = wkClient, fmt.Sprintf("%s:%d global.well_known_client_name", d.Path, wkClientLine)
	default:
		p.BaseURL, clientSource = "https://"+delegated.Host, "the host of m.server"
	}
	if client != nil {
		// The identity server and the other keys stay whatever decided
		// base_url.
		p.IdentityServer, p.ClientExtra = client.identity, client.extra
	}
	p.Sources = []string{"m.server: " + serverSource, "base_url: " + clientSource}
	p.Hosts = hostList(p.ServerName, delegated.Host, hostOf(p.BaseURL))

	// A base_url on 8448 of a host this edge serves needs the client API
	// there, and so does every client that logged in with one, also when
	// the new base_url is another.
	for _, u := range []string{p.BaseURL, clientURL(client), wkClient} {
		if bu, _, err := delegation.ParseBaseURL(u); err == nil && bu.Port() == "8448" && config.HostEntry(p.Hosts, bu.Hostname()) != "" {
			if !p.FederationClientAPI {
				p.Changes = append(p.Changes, fmt.Sprintf("the federation port 8448 serves the client API too (listen.federation_client_api): clients that logged in with %s keep syncing without logging in again", u))
			}
			p.FederationClientAPI = true
		}
	}
	if mServer != "" && !strings.EqualFold(mServer, p.MServer) {
		p.Changes = append(p.Changes, fmt.Sprintf("m.server changes from %q (what %s serves today) to %q: remote servers keep the old one until their cache of it expires (up to 48h), so keep the old host and port answering until then", mServer, p.PublishedServer.URL, p.MServer))
	}
	if client != nil && strings.TrimSuffix(client.baseURL, "/") != strings.TrimSuffix(p.BaseURL, "/") {
		p.Changes = append(p.Changes, fmt.Sprintf("base_url changes from %q to %q: only new logins use it; clients logged in already keep %s for as long as their login lasts, so it must keep answering", client.baseURL, p.BaseURL, client.baseURL))
	}

	if wkServer != "" && !strings.EqualFold(wkServer, p.MServer) {
		p.Edits = append(p.Edits, yamlfile.Problem{File: d.Path, Line: wkServerLine, Field: "global.well_known_server_name",
			Msg: fmt.Sprintf("is %q, but wellknownd answers /.well-known/matrix/server with %q (%s). Set it to that, or remove it, so that the two never disagree", wkServer, p.MServer, serverSource)})
	}
	if wkClient != "" && strings.TrimSuffix(wkClient, "/") != strings.TrimSuffix(p.BaseURL, "/") {
		p.Edits = append(p.Edits, yamlfile.Problem{File: d.Path, Line: wkClientLine, Field: "global.well_known_client_name",
			Msg: fmt.Sprintf("is %q, but wellknownd answers /.well-known/matrix/client with base_url %q (%s). Set it to that, or remove it", wkClient, p.BaseURL, clientSource)})
	}
	return nil
}

// todayServer is the m.server served today, or "" when there is none that
// servers can use (said in Warnings).
func (p *adoptPlan) todayServer() string {
	pub := p.PublishedServer
	if pub == nil || pub.Body == nil {
		return ""
	}
	var doc struct {
		MServer *string `json:"m.server"`
	}
	if err := json.Unmarshal(pub.Body, &doc); err != nil || doc.MServer == nil {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s serves %q, which remote servers cannot use (no m.server in a JSON object); it is not kept", pub.URL, pub.Body))
		return ""
	}
	if _, err := delegation.ParseServerName(*doc.MServer); err != nil {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s names m.server %q, which %v; it is not kept", pub.URL, *doc.MServer, err))
		return ""
	}
	return *doc.MServer
}

// todayClient is the client document served today, or nil when there is
// none that clients can use (said in Warnings).
func (p *adoptPlan) todayClient() *todayClient {
	pub := p.PublishedClient
	if pub == nil || pub.Body == nil {
		return nil
	}
	invalid := func(why string) *todayClient {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s serves a document clients cannot use (%s); it is not kept", pub.URL, why))
		return nil
	}
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(pub.Body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return invalid("not a JSON object: " + err.Error())
	}
	base := func(key string) (string, error) {
		var v struct {
			BaseURL string `json:"base_url"`
		}
		if err := json.Unmarshal(doc[key], &v); err != nil {
			return "", fmt.Errorf("%s is not an object with base_url", key)
		}
		if _, _, err := delegation.ParseBaseURL(v.BaseURL); err != nil {
			return "", fmt.Errorf("%s.base_url %w", key, err)
		}
		return v.BaseURL, nil
	}
	var c todayClient
	var err error
	if c.baseURL, err = base(delegation.KeyHomeserver); err != nil {
		return invalid(err.Error())
	}
	if _, ok := doc[delegation.KeyIdentityServer]; ok {
		if c.identity, err = base(delegation.KeyIdentityServer); err != nil {
			return invalid(err.Error())
		}
	}
	delete(doc, delegation.KeyHomeserver)
	delete(doc, delegation.KeyIdentityServer)
	if len(doc) > 0 {
		b, _ := json.Marshal(doc)
		c.extra = string(b)
	}
	return &c
}

// unreachable says what became of fetching the documents.
func (p *adoptPlan) unreachable() string {
	if p.PublishedServer == nil {
		return "the documents served today were not fetched"
	}
	var parts []string
	for _, pub := range []*fedcheck.Published{p.PublishedServer, p.PublishedClient} {
		why := pub.Problem
		if why == "" {
			why = "it cannot be used"
		}
		parts = append(parts, pub.URL+": "+why)
	}
	return strings.Join(parts, "; ")
}

// documents are the documents cfg serves, with where their values came
// from and how they compare with today's.
func (p *adoptPlan) documents(cfg *config.Config) []ServedDocument {
	var out []ServedDocument
	for _, d := range []struct {
		doc    string
		body   []byte
		source string
		today  *fedcheck.Published
	}{
		{"server", cfg.Documents.Server.Body, p.Sources[0], p.PublishedServer},
		{"client", cfg.Documents.Client.Body, p.Sources[1], p.PublishedClient},
	} {
		sd := ServedDocument{URL: "https://" + p.ServerName + "/.well-known/matrix/" + d.doc, Body: string(d.body), Notes: []string{d.source}}
		switch {
		case d.today == nil:
			sd.Notes = append(sd.Notes, "today's document was not fetched")
		case d.today.Body == nil:
			sd.Notes = append(sd.Notes, "today: none ("+d.today.Problem+")")
		case bytes.Equal(d.today.Body, d.body):
			sd.Notes = append(sd.Notes, "the same bytes as today")
		default:
			sd.Notes = append(sd.Notes, "today: "+strings.TrimSpace(string(d.today.Body)))
		}
		out = append(out, sd)
	}
	return out
}

// describeSetting says what a well_known_server_name setting tells.
func describeSetting(v, serverHost string) string {
	switch sn, err := delegation.ParseServerName(v); {
	case v == "":
		return "is not set"
	case err != nil:
		return fmt.Sprintf("is %q, which %v", v, err)
	case strings.EqualFold(sn.Host, serverHost):
		return fmt.Sprintf("is %q, the server name itself", v)
	}
	return fmt.Sprintf("is %q", v)
}

func hostOf(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func clientURL(c *todayClient) string {
	if c == nil {
		return ""
	}
	return c.baseURL
}
