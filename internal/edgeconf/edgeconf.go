// Package edgeconf builds the configuration most tests start from:
// example.com delegated to matrix.example.com, plain HTTP (tls.mode off) and
// the admin listener on free loopback ports, fronting one upstream. Tests
// append what they are about (a supervise list, a log section).
package edgeconf

import "strings"

// Plain fronts upstream with the given request body cap; upstreamLines are
// further fields of the upstream section, e.g. "trusted_proxies: [127.0.0.0/8]".
func Plain(upstream, maxBody string, upstreamLines ...string) string {
	var b strings.Builder
	b.WriteString(`server_name: example.com
delegation:
  server: matrix.example.com:443
  client_base_url: https://matrix.example.com
hosts: [example.com, matrix.example.com]
listen: {http: "127.0.0.1:0", https: "", federation: "", admin: "127.0.0.1:0"}
tls: {mode: "off"}
upstream:
  url: ` + upstream + `
  max_body: ` + maxBody + "\n")
	for _, l := range upstreamLines {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}
