// Package edgeconf builds the configuration most tests start from:
// example.com delegated to matrix.example.com, plain HTTP (tls.mode off) and
// the admin listener on free loopback ports, fronting one upstream. Tests
// append what they are about (a supervise list, a log section).
package edgeconf

import (
	"fmt"
	"strings"
)

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

// SharedEdge is edge n (1, 2, 3, …) of several that keep their
// certificates in one PostgreSQL database (pgURL, its password in
// pwFile) and obtain them from the ACME directory caURL (whose API
// certificate caRoot verifies) for example.com by http-01. Each listens on
// its own loopback address, 127.0.0.n, and all on the same ports, as
// machines behind one DNS name do.
func SharedEdge(n, httpPort, tlsPort int, caURL, caRoot, pgURL, pwFile string) string {
	return fmt.Sprintf(`server_name: example.com
delegation: {server: "example.com:443", client_base_url: "https://example.com"}
hosts: [example.com]
listen: {http: "127.0.0.%d:%d", https: "127.0.0.%d:%d", federation: "", admin: ""}
tls:
  mode: acme
  email: admin@example.com
  ca: %s
  ca_root: %s
  storage: %s
  storage_password_file: %s
  challenges: [http-01]
upstream: {url: "http://127.0.0.1:1"}
`, n, httpPort, n, tlsPort, caURL, caRoot, pgURL, pwFile)
}
