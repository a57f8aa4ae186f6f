package fedcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
)

// checkNotary asks a notary (a key server other servers trust, such as
// matrix.org) what it knows of name's signing keys, as a server that
// cannot reach name directly would: the keys it reports must be the ones
// name serves (served, the key response fetched before; nil when none
// was).
func (c *checker) checkNotary(ctx context.Context, name delegation.ServerName, served json.RawMessage) {
	notary := c.opts.Notary
	check := "notary " + notary.String()
	targets := c.resolveQuiet(ctx, notary)
	if len(targets) == 0 {
		c.fail(check, "", "the notary's server name does not resolve", "check self_check.notary")
		return
	}
	t := targets[0]
	path := "/_matrix/key/v2/query/" + name.String()
	addr := t.Destination
	if a, ok := c.opts.Resolve[addr]; ok {
		addr = a
	}
	// Unlike fedGET, the notary's certificate is verified: its answer is
	// believed.
	client := c.httpClient(false)
	tr := client.Transport.(*http.Transport)
	tr.TLSClientConfig.ServerName = t.TLSServerName
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return c.dial(ctx, network, addr)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+t.Destination+path, nil)
	req.Host = t.Host
	var body []byte
	resp, err := client.Do(req)
	if err == nil {
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
	switch {
	case err != nil:
		c.fail(check, "", "asking it failed: "+shortErr(err), "check self_check.notary, or try again later")
		return
	case resp.StatusCode != http.StatusOK:
		c.fail(check, "", "it answered "+resp.Status+" to GET "+path, "check self_check.notary")
		return
	}
	var answer struct {
		ServerKeys []struct {
			ServerName string                          `json:"server_name"`
			VerifyKeys map[string]struct{ Key string } `json:"verify_keys"`
		} `json:"server_keys"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		c.fail(check, "", "its answer is not JSON: "+err.Error(), "check self_check.notary")
		return
	}
	var own struct {
		VerifyKeys map[string]struct{ Key string } `json:"verify_keys"`
	}
	json.Unmarshal(served, &own)
	reported := map[string]string{}
	for _, k := range answer.ServerKeys {
		if k.ServerName != name.String() {
			continue
		}
		for id, v := range k.VerifyKeys {
			reported[id] = v.Key
		}
	}
	if len(reported) == 0 {
		c.fail(check, "", "it knows no key of "+name.String()+": it cannot reach this server either",
			"make the federation port reachable from the Internet; the notary retries when asked again")
		return
	}
	for id, key := range own.VerifyKeys {
		if got, ok := reported[id]; !ok || got != key.Key {
			c.fail(check, "", fmt.Sprintf("it reports keys %s, not %s that this server serves", keyIDs(reported), id),
				"the notary has not seen the current key yet (it refreshes when asked again), or another server answers for "+name.String())
			return
		}
	}
	c.pass(check, "it reports "+keyIDs(reported)+" for "+name.String())
}

func keyIDs(m map[string]string) string {
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return strings.Join(ids, ", ")
}

// resolveQuiet resolves a server name as the spec says, without adding
// its steps to the report.
func (c *checker) resolveQuiet(ctx context.Context, name delegation.ServerName) []Target {
	sub := &checker{opts: c.opts, resolver: c.resolver, report: &Report{DNSResult: DNSResult{Addrs: map[string][]string{}}}}
	return sub.resolve(ctx, name)
}
