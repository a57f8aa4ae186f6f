// Package edgeconf builds the configuration tests start from, so that its
// base lives in one place: example.com delegated to matrix.example.com
// (hosts: both, the default), plain HTTP (tls.mode off) and the admin
// listener on free loopback ports, and no upstream section (the default
// upstream, http://127.0.0.1:8008). Options change what a test is about;
// further top-level sections (limits, routes, supervise, log) are
// appended to the result.
package edgeconf

import (
	"fmt"
	"strings"
)

// An Option changes the base configuration.
type Option func(*edge)

type edge struct {
	serverName, mServer, clientBaseURL string
	hosts                              []string
	http, https, federation, admin     string
	listenMore                         []string
	tlsMode                            string
	tlsFields                          []string
	upstream                           []string
}

// New is the base configuration with opts applied in order.
func New(opts ...Option) string {
	e := &edge{
		serverName: "example.com", mServer: "matrix.example.com:443", clientBaseURL: "https://matrix.example.com",
		http: "127.0.0.1:0", admin: "127.0.0.1:0",
		tlsMode: "off",
	}
	for _, o := range opts {
		o(e)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\ndelegation:\n  server: %s\n  client_base_url: %s\n", e.serverName, e.mServer, e.clientBaseURL)
	if e.hosts != nil {
		quoted := make([]string, len(e.hosts))
		for i, h := range e.hosts {
			quoted[i] = fmt.Sprintf("%q", h)
		}
		b.WriteString("hosts: [" + strings.Join(quoted, ", ") + "]\n")
	}
	listen := []string{fmt.Sprintf("http: %q", e.http), fmt.Sprintf("https: %q", e.https),
		fmt.Sprintf("federation: %q", e.federation), fmt.Sprintf("admin: %q", e.admin)}
	b.WriteString("listen: {" + strings.Join(append(listen, e.listenMore...), ", ") + "}\n")
	fmt.Fprintf(&b, "tls:\n  mode: %q\n", e.tlsMode)
	for _, f := range e.tlsFields {
		b.WriteString("  " + f + "\n")
	}
	if e.upstream != nil {
		b.WriteString("upstream:\n")
		for _, l := range e.upstream {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// Names sets server_name and the delegation: m.server and
// m.homeserver's base_url. Unless Hosts says otherwise, hosts are the
// default, the server name's host and m.server's.
func Names(serverName, mServer, clientBaseURL string) Option {
	return func(e *edge) { e.serverName, e.mServer, e.clientBaseURL = serverName, mServer, clientBaseURL }
}

// Hosts lists hosts (a wildcard, *.example.com, among them if need be).
func Hosts(hosts ...string) Option {
	return func(e *edge) { e.hosts = hosts }
}

// Listen sets the four listeners' addresses ("" is off); more are
// further fields of listen, e.g. `metrics: "127.0.0.1:0"` or "http3: false".
func Listen(http, https, federation, admin string, more ...string) Option {
	return func(e *edge) {
		e.http, e.https, e.federation, e.admin = http, https, federation, admin
		e.listenMore = more
	}
}

// TLS sets tls.mode and further fields of the tls section, e.g.
// "hsts: {max_age: 1h}".
func TLS(mode string, fields ...string) Option {
	return func(e *edge) { e.tlsMode, e.tlsFields = mode, fields }
}

// Internal is tls.mode internal, its CA and certificates kept in storage
// (a directory or a postgres:// URL).
func Internal(storage string, fields ...string) Option {
	return TLS("internal", append([]string{fmt.Sprintf("storage: %q", storage)}, fields...)...)
}

// Files is tls.mode files with the given PEM certificate chain and key.
func Files(certFile, keyFile string, fields ...string) Option {
	return TLS("files", append([]string{fmt.Sprintf("cert_file: %q", certFile), fmt.Sprintf("key_file: %q", keyFile)}, fields...)...)
}

// ACME is tls.mode acme against the ACME directory caURL, whose API
// certificate caRoot verifies, for admin@example.com, its state kept in
// storage; fields are further ones, e.g. "challenges: [dns-01]".
func ACME(caURL, caRoot, storage string, fields ...string) Option {
	return TLS("acme", append([]string{"email: admin@example.com", "ca: " + caURL,
		fmt.Sprintf("ca_root: %q", caRoot), fmt.Sprintf("storage: %q", storage)}, fields...)...)
}

// Upstream fronts url; lines are further fields of the upstream section,
// e.g. "max_body: 1KiB" or "trusted_proxies: [127.0.0.0/8]".
func Upstream(url string, lines ...string) Option {
	return func(e *edge) { e.upstream = append([]string{"url: " + url}, lines...) }
}

// Plain fronts upstream with the given request body cap; upstreamLines are
// further fields of the upstream section, e.g. "trusted_proxies: [127.0.0.0/8]".
func Plain(upstream, maxBody string, upstreamLines ...string) string {
	return New(Upstream(upstream, append([]string{"max_body: " + maxBody}, upstreamLines...)...))
}

// SharedEdge is edge n (1, 2, 3, …) of several that keep their
// certificates in one PostgreSQL database (pgURL, its password in
// pwFile) and obtain them from the ACME directory caURL (whose API
// certificate caRoot verifies) for example.com by http-01. Each listens on
// its own loopback address, 127.0.0.n, and all on the same ports, as
// machines behind one DNS name do. opts change it further.
func SharedEdge(n, httpPort, tlsPort int, caURL, caRoot, pgURL, pwFile string, opts ...Option) string {
	return New(append([]Option{
		Names("example.com", "example.com:443", "https://example.com"),
		Hosts("example.com"),
		Listen(fmt.Sprintf("127.0.0.%d:%d", n, httpPort), fmt.Sprintf("127.0.0.%d:%d", n, tlsPort), "", ""),
		ACME(caURL, caRoot, pgURL, fmt.Sprintf("storage_password_file: %q", pwFile), "challenges: [http-01]"),
		Upstream("http://127.0.0.1:1"),
	}, opts...)...)
}
