package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wellknownd/wellknownd/delegation"
)

// Load reads the file at path and returns its configuration with every
// problem found. The configuration is usable only when problems holds no
// errors (problems.Errors() is empty); warnings are for the log.
func Load(path string) (*Config, Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, problems := Parse(path, data)
	return cfg, problems, nil
}

// Parse decodes and validates data, read from file (named in problems).
func Parse(file string, data []byte) (*Config, Problems) {
	d := &decoder{file: file, lines: map[string]int{}}
	cfg := Default()
	if !d.decodeFile(data, &cfg) {
		return &cfg, d.problems
	}
	if _, set := d.lines["hosts"]; !set {
		cfg.Hosts = defaultHosts(cfg)
	}
	for i := range cfg.Supervise {
		supervisedDefaults(&cfg.Supervise[i])
	}
	v := validator{decoder: d, cfg: &cfg}
	v.validate()
	return &cfg, d.problems
}

// Spec is the delegation the configuration describes.
func (c *Config) Spec() delegation.Spec {
	s := delegation.Spec{
		ServerName:     c.ServerName,
		Server:         c.Delegation.Server,
		ClientBaseURL:  c.Delegation.ClientBaseURL,
		IdentityServer: c.Delegation.IdentityServer,
		ClientExtra:    c.Delegation.ClientExtra,
	}
	if sp := c.Delegation.Support; sp != nil {
		s.Support = &delegation.Support{SupportPage: sp.SupportPage}
		for _, ct := range sp.Contacts {
			s.Support.Contacts = append(s.Support.Contacts, delegation.Contact(ct))
		}
	}
	return s
}

// BaseHost is the server name's host, lower-cased: the base domain.
func (c *Config) BaseHost() string {
	n, err := delegation.ParseServerName(c.ServerName)
	if err != nil {
		return ""
	}
	return strings.ToLower(n.Host)
}

// DelegatedHost is m.server's host, lower-cased.
func (c *Config) DelegatedHost() string {
	n, err := delegation.ParseServerName(c.Delegation.Server)
	if err != nil {
		return ""
	}
	return strings.ToLower(n.Host)
}

func defaultHosts(c Config) []string {
	var hosts []string
	for _, h := range []string{c.BaseHost(), c.DelegatedHost()} {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

type validator struct {
	*decoder
	cfg *Config
}

func (v *validator) errf(field, format string, args ...any) {
	if v.undecoded(field) {
		return
	}
	v.problems = append(v.problems, Problem{File: v.file, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// undecoded reports whether field, or a field above it, failed to decode:
// its value is the default, and validating that would report noise.
func (v *validator) undecoded(field string) bool {
	for _, p := range v.problems {
		if !p.Warning && p.Field != "" && (field == p.Field || strings.HasPrefix(field, p.Field+".") || strings.HasPrefix(field, p.Field+"[")) {
			return true
		}
	}
	return false
}

func (v *validator) warnf(field, format string, args ...any) {
	if v.undecoded(field) {
		return
	}
	v.problems = append(v.problems, Problem{File: v.file, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// specFields maps the delegation package's document paths to config fields.
var specFields = []struct{ doc, cfg string }{
	{"server_name", "server_name"},
	{"m.server", "delegation.server"},
	{"m.homeserver.base_url", "delegation.client_base_url"},
	{"m.identity_server.base_url", "delegation.identity_server"},
	{"extra", "delegation.client_extra"},
	{"support", "delegation.support"},
}

func specField(doc string) string {
	for _, m := range specFields {
		if doc == m.doc {
			return m.cfg
		}
		if rest, ok := strings.CutPrefix(doc, m.doc); ok && (rest[0] == '.' || rest[0] == '[') {
			return m.cfg + rest
		}
	}
	return doc
}

func (v *validator) validate() {
	c := v.cfg
	for _, fe := range c.Spec().Check() {
		field := specField(fe.Field)
		if fe.Warning {
			v.warnf(field, "%s", fe.Err)
		} else {
			v.errf(field, "%s", fe.Err)
		}
	}
	if c.Delegation.MaxAge < 0 {
		v.errf("delegation.max_age", "must not be negative")
	} else if c.Delegation.MaxAge.D().Hours() > 48 {
		v.warnf("delegation.max_age", "is %s, but servers cap the well-known cache at 48h", c.Delegation.MaxAge.D())
	}
	v.validateHosts()
	v.validateBaseDomain()
	v.validateListen()
	v.validateTLS()
	v.validateSupervise()
	v.validateDendrite()
	if f := v.cfg.Log.Format; f != "text" && f != "json" {
		v.errf("log.format", "%q is not a log format; valid: text, json", f)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(v.cfg.Log.Level)); err != nil {
		v.errf("log.level", "%q is not a log level; valid: debug, info, warn, error", v.cfg.Log.Level)
	}
	v.validateUpstream()
	if c.ShutdownTimeout <= 0 {
		v.errf("shutdown_timeout", "must be more than 0, e.g. 10s")
	}
}

func (v *validator) validateHosts() {
	c := v.cfg
	if len(c.Hosts) == 0 {
		v.errf("hosts", "is empty; list at least the server name's host")
		return
	}
	seen := map[string]int{}
	valid := true
	for i, h := range c.Hosts {
		field := "hosts[" + strconv.Itoa(i) + "]"
		if _, err := delegation.ParseHostname(h); err != nil {
			v.errf(field, "%q %s", h, err)
			valid = false
			continue
		}
		key := strings.ToLower(h)
		if j, dup := seen[key]; dup {
			v.errf(field, "%q is listed twice (also hosts[%d])", h, j)
		}
		seen[key] = i
	}
	if !valid {
		// Whether a name is missing cannot be told from a list with broken
		// entries; those errors come first.
		return
	}
	if base := c.BaseHost(); base != "" {
		if _, ok := seen[base]; !ok {
			v.errf("hosts", "does not include %q, the server name's host; the well-known documents would never be served there", base)
		}
	}
	if dh := c.DelegatedHost(); dh != "" {
		if _, ok := seen[dh]; !ok {
			v.warnf("delegation.server", "names host %q, which is not in hosts; this daemon will not answer for it (fine if another server does)", dh)
		}
	}
}

func (v *validator) validateBaseDomain() {
	b := v.cfg.BaseDomain
	if b.Redirect != "" && b.Proxy != "" {
		v.errf("base_domain", "has both redirect and proxy; choose one")
	}
	if b.Redirect != "" {
		if err := delegation.CheckHTTPURL(b.Redirect); err != nil {
			v.errf("base_domain.redirect", "%s", err)
		}
	}
	if b.Proxy != "" {
		if err := delegation.CheckHTTPURL(b.Proxy); err != nil {
			v.errf("base_domain.proxy", "%s", err)
		}
	}
}

func (v *validator) validateListen() {
	l := v.cfg.Listen
	addrs := []struct{ field, addr string }{
		{"listen.http", l.HTTP}, {"listen.https", l.HTTPS}, {"listen.federation", l.Federation}, {"listen.admin", l.Admin},
	}
	used := map[string]string{}
	for _, a := range addrs {
		if a.addr == "" {
			continue
		}
		if err := checkListenAddr(a.addr); err != nil {
			v.errf(a.field, "%q %s", a.addr, err)
			continue
		}
		if other, dup := used[a.addr]; dup && !strings.HasSuffix(a.addr, ":0") {
			v.errf(a.field, "%q is also %s; each listener needs its own address", a.addr, other)
		}
		used[a.addr] = a.field
	}
	if v.cfg.TLS.Mode == TLSOff {
		for _, a := range addrs[1:3] { // https, federation
			if _, set := v.lines[a.field]; set && a.addr != "" {
				v.warnf(a.field, "is not started: tls.mode is off, so everything is served on listen.http")
			}
		}
		if l.HTTP == "" {
			v.errf("listen.http", "is off, but tls.mode off serves everything there; nothing would be served")
		}
	}
}

// checkListenAddr accepts host:port with a numeric port (0 picks a free one)
// and a host that is empty (all addresses), an IP, or a name.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("is not host:port (e.g. :443 or 127.0.0.1:9090)")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("has port %q; a port is a number from 0 to 65535", port)
	}
	if host != "" && strings.ContainsAny(host, " /") {
		return fmt.Errorf("has host %q, which is neither an IP address nor a name", host)
	}
	return nil
}

func (v *validator) validateUpstream() {
	u := v.cfg.Upstream
	if err := delegation.CheckHTTPURL(u.URL); err != nil {
		v.errf("upstream.url", "%s", err)
	}
	if u.FederationURL != "" {
		if err := delegation.CheckHTTPURL(u.FederationURL); err != nil {
			v.errf("upstream.federation_url", "%s", err)
		}
	}
	if u.MaxBody <= 0 {
		v.errf("upstream.max_body", "must be more than 0, e.g. 100MiB")
	}
	for _, list := range []struct {
		field string
		cidrs []string
	}{{"upstream.trusted_proxies", u.TrustedProxies}, {"upstream.expose_admin", u.ExposeAdmin}} {
		for i, c := range list.cidrs {
			if _, err := ParsePrefix(c); err != nil {
				v.errf(list.field+"["+strconv.Itoa(i)+"]", "%s", err)
			}
		}
	}
}

// ParsePrefix parses a CIDR such as 10.0.0.0/8, or a single address as the
// prefix that holds only it.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32", s)
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q has bits set past its prefix length; did you mean %s?", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR such as 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// publicCAs are the ca names this file knows; anything else must be an ACME
// directory URL.
var publicCAs = []string{"letsencrypt", "letsencrypt-staging", "zerossl"}

func (v *validator) validateTLS() {
	t := v.cfg.TLS
	l := v.cfg.Listen
	switch t.Mode {
	case TLSOff:
		return
	case TLSACME, TLSFiles, TLSInternal:
	default:
		v.errf("tls.mode", "%q is not a TLS mode; valid: acme, files, internal, off", t.Mode)
		return
	}
	if l.HTTPS == "" && l.Federation == "" {
		v.errf("tls.mode", "is %s, but listen.https and listen.federation are both off; nothing would use a certificate", t.Mode)
	}
	switch t.Mode {
	case TLSFiles:
		v.validateFiles()
	case TLSACME:
		v.validateACME()
	}
}

func (v *validator) validateFiles() {
	t := v.cfg.TLS
	if t.CertFile == "" {
		v.errf("tls.cert_file", "is required with tls.mode files (a PEM chain, leaf first)")
	}
	if t.KeyFile == "" {
		v.errf("tls.key_file", "is required with tls.mode files (the PEM private key)")
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return
	}
	if _, err := LoadKeyPair(t.CertFile, t.KeyFile); err != nil {
		v.errf("tls.cert_file", "%s", err)
	}
}

func (v *validator) validateACME() {
	t := v.cfg.TLS
	if t.Email == "" && !t.Agree {
		v.errf("tls.email", "is required with tls.mode acme (the CA warns there before a certificate expires); or set tls.agree: true to accept the CA's terms without one")
	} else if t.Email != "" {
		if err := delegation.CheckEmail(t.Email); err != nil {
			v.errf("tls.email", "%s", err)
		}
	}
	public := slices.Contains(publicCAs, t.CA)
	if !public {
		if !strings.HasPrefix(t.CA, "https://") {
			v.errf("tls.ca", "%q is neither %s nor an ACME directory URL (https://...)", t.CA, strings.Join(publicCAs, ", "))
		} else if err := delegation.CheckHTTPURL(t.CA); err != nil {
			v.errf("tls.ca", "%s", err)
		}
	}
	if t.CA == "zerossl" && t.ZeroSSLAPIKeyFile == "" {
		v.errf("tls.zerossl_api_key_file", "is required with ca: zerossl")
	}
	for _, f := range []struct{ field, path string }{{"tls.ca_root", t.CARoot}, {"tls.zerossl_api_key_file", t.ZeroSSLAPIKeyFile}, {"tls.dns.api_token_file", t.DNS.APITokenFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			v.errf(f.field, "cannot be read: %v", unwrapPathError(err))
		}
	}
	if len(t.Challenges) == 0 {
		v.errf("tls.challenges", "is empty; list at least one of http-01, tls-alpn-01, dns-01")
	}
	for i, ch := range t.Challenges {
		field := "tls.challenges[" + strconv.Itoa(i) + "]"
		switch ch {
		case ChallengeHTTP01:
			if v.cfg.Listen.HTTP == "" {
				v.errf(field, "http-01 is answered on listen.http, which is off")
			}
		case ChallengeTLSALPN01:
			if v.cfg.Listen.HTTPS == "" {
				v.errf(field, "tls-alpn-01 is answered on listen.https, which is off")
			}
		case ChallengeDNS01:
			if t.DNS.Provider == "" {
				v.errf("tls.dns.provider", "is required for dns-01; valid: %s", strings.Join(DNSProviders, ", "))
			}
		default:
			v.errf(field, "%q is not a challenge type; valid: http-01, tls-alpn-01, dns-01", ch)
		}
	}
	if t.DNS.Provider != "" {
		if !slices.Contains(DNSProviders, t.DNS.Provider) {
			v.errf("tls.dns.provider", "%q is not a supported DNS provider; valid: %s", t.DNS.Provider, strings.Join(DNSProviders, ", "))
		}
		if t.DNS.APITokenFile == "" {
			v.errf("tls.dns.api_token_file", "is required with tls.dns.provider")
		}
	}
	if public {
		for i, h := range v.cfg.Hosts {
			if n, err := delegation.ParseHostname(h); err == nil && !isPublicName(n) {
				v.errf("hosts["+strconv.Itoa(i)+"]", "%q cannot get a certificate from a public CA; use tls.mode internal (or files) for local and private names", h)
			}
		}
	}
}

// DNSProviders are the DNS APIs dns-01 can use.
var DNSProviders = []string{"cloudflare"}

// isPublicName reports whether a public CA could issue for n: not an IP
// literal, not localhost, not a reserved or single-label name.
func isPublicName(n delegation.ServerName) bool {
	if n.IP.IsValid() {
		return false
	}
	h := strings.ToLower(n.Host)
	if !strings.Contains(h, ".") {
		return false
	}
	for _, suffix := range []string{".localhost", ".local", ".test", ".internal", ".invalid", ".example", ".home.arpa", ".lan"} {
		if strings.HasSuffix(h, suffix) {
			return false
		}
	}
	return true
}

// LoadKeyPair loads and checks a PEM certificate chain and its key: they
// must parse, match, and the leaf must not have expired.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, unwrapPathError(err))
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
	}
	if time.Now().After(pair.Leaf.NotAfter) {
		return nil, fmt.Errorf("%s expired on %s", certFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// Signals are the stop signals a supervise entry may name.
var Signals = map[string]syscall.Signal{
	"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
	"SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
}

func (v *validator) validateSupervise() {
	names := map[string]int{}
	for i, e := range v.cfg.Supervise {
		at := "supervise[" + strconv.Itoa(i) + "]"
		if e.Name == "" {
			v.errf(at+".name", "is required")
		} else if j, dup := names[e.Name]; dup {
			v.errf(at+".name", "%q is also supervise[%d]'s name", e.Name, j)
		}
		names[e.Name] = i
		if len(e.Command) > 0 {
			if err := checkExecutable(e.Command[0]); err != nil {
				v.errf(at+".command[0]", "%s", err)
			}
		} else if e.Ready.HTTP == "" && e.Ready.TCP == "" {
			v.errf(at, "has neither a command to run nor a ready probe to watch")
		}
		if e.Dir != "" {
			if st, err := os.Stat(e.Dir); err != nil || !st.IsDir() {
				v.errf(at+".dir", "%q is not a directory", e.Dir)
			}
		}
		switch {
		case e.Ready.HTTP != "" && e.Ready.TCP != "":
			v.errf(at+".ready", "has both http and tcp; choose one")
		case e.Ready.HTTP != "":
			if err := delegation.CheckHTTPURL(e.Ready.HTTP); err != nil {
				v.errf(at+".ready.http", "%s", err)
			}
		case e.Ready.TCP != "":
			if _, _, err := net.SplitHostPort(e.Ready.TCP); err != nil {
				v.errf(at+".ready.tcp", "%q is not host:port", e.Ready.TCP)
			}
		}
		if _, ok := Signals[e.StopSignal]; !ok {
			v.errf(at+".stop_signal", "%q is not a stop signal; valid: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2", e.StopSignal)
		}
		if e.StopTimeout <= 0 {
			v.errf(at+".stop_timeout", "must be more than 0, e.g. 30s")
		}
	}
	for i, e := range v.cfg.Supervise {
		for j, a := range e.After {
			if _, ok := names[a]; !ok {
				v.errf("supervise["+strconv.Itoa(i)+"].after["+strconv.Itoa(j)+"]", "%q names no supervise entry", a)
			} else if a == e.Name {
				v.errf("supervise["+strconv.Itoa(i)+"].after["+strconv.Itoa(j)+"]", "%q cannot come after itself", a)
			}
		}
	}
	if cycle := afterCycle(v.cfg.Supervise); cycle != "" {
		v.errf("supervise", "after has a cycle: %s", cycle)
	}
}

// checkExecutable makes sure a command can be run: a path that exists and
// is executable, or a name found on $PATH.
func checkExecutable(name string) error {
	if !strings.Contains(name, "/") {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%q is not found on $PATH; give its absolute path", name)
		}
		return nil
	}
	st, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", name)
	case err != nil:
		return fmt.Errorf("%s: %v", name, unwrapPathError(err))
	case st.IsDir():
		return fmt.Errorf("%s is a directory, not a program", name)
	case st.Mode()&0o111 == 0:
		return fmt.Errorf("%s is not executable (chmod +x)", name)
	}
	return nil
}

// afterCycle returns a cycle among after lists, as "a -> b -> a", or "".
func afterCycle(entries []Supervised) string {
	after := map[string][]string{}
	for _, e := range entries {
		after[e.Name] = e.After
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) string
	visit = func(n string) string {
		switch state[n] {
		case visiting:
			i := slices.Index(path, n)
			return strings.Join(append(slices.Clone(path[i:]), n), " -> ")
		case done:
			return ""
		}
		state[n] = visiting
		path = append(path, n)
		for _, a := range after[n] {
			if a == n {
				continue
			}
			if c := visit(a); c != "" {
				return c
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return ""
	}
	for _, e := range entries {
		if c := visit(e.Name); c != "" {
			return c
		}
	}
	return ""
}
