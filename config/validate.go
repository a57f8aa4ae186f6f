package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

// Load reads the file at path and returns its configuration with every
// problem found. The configuration is usable only when problems holds no
// errors (problems.Errors() is empty); warnings are for the log.
func Load(path string) (*Config, yamlfile.Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, problems := Parse(path, data)
	return cfg, problems, nil
}

// Parse decodes and validates data, read from file (named in problems).
func Parse(file string, data []byte) (*Config, yamlfile.Problems) {
	d := &decoder{file: file, lines: map[string]int{}}
	cfg := Default()
	if !d.decodeFile(data, &cfg) {
		return &cfg, inFileOrder(file, d.problems)
	}
	v := validator{decoder: d, cfg: &cfg}
	// The delegation comes first: the default hosts are its names.
	v.validateDelegation()
	fillDefaults(&cfg, func(field string) bool { _, set := d.lines[field]; return set })
	v.validate()
	return &cfg, inFileOrder(file, d.problems)
}

// inFileOrder sorts problems as a person reads the files: this file's
// first, line by line, then each other file (a supervised Dendrite's
// dendrite.yaml) the same way. The checks find problems in their own
// order (decoding, then delegation, then the rest), which jumped up and
// down the file. A problem with no line (a value left to its default) comes
// after its file's lines; problems on one line keep the order found.
func inFileOrder(file string, ps yamlfile.Problems) yamlfile.Problems {
	slices.SortStableFunc(ps, func(a, b yamlfile.Problem) int {
		if a.File != b.File {
			switch file {
			case a.File:
				return -1
			case b.File:
				return 1
			}
			return strings.Compare(a.File, b.File)
		}
		return cmp.Compare(lineOrder(a.Line), lineOrder(b.Line))
	})
	return ps
}

func lineOrder(line int) int {
	if line == 0 {
		return math.MaxInt
	}
	return line
}

// spec is the delegation the configuration describes.
func (c *Config) spec() delegation.Spec {
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
func (c *Config) BaseHost() string { return strings.ToLower(c.Name.Host) }

// DelegatedHost is m.server's host, lower-cased.
func (c *Config) DelegatedHost() string { return strings.ToLower(c.Delegation.Delegated.Host) }

// ClientHost is the host of m.homeserver's base_url, lower-cased; "" before
// validation has parsed it.
func (c *Config) ClientHost() string {
	if c.Delegation.BaseURL == nil {
		return ""
	}
	return strings.ToLower(c.Delegation.BaseURL.Hostname())
}

type validator struct {
	*decoder
	cfg *Config
}

func (v *validator) errf(field, format string, args ...any) {
	if v.undecoded(field) {
		return
	}
	v.problems = append(v.problems, yamlfile.Problem{File: v.file, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
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
	v.problems = append(v.problems, yamlfile.Problem{File: v.file, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, args...), Warning: true})
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

// validateDelegation checks and renders the discovery documents, and
// resolves the names and URL they hold.
func (v *validator) validateDelegation() {
	c := v.cfg
	docs, problems := c.spec().Render()
	for _, fe := range problems {
		field := specField(fe.Field)
		if fe.Warning {
			v.warnf(field, "%s", fe.Err)
		} else {
			v.errf(field, "%s", fe.Err)
		}
	}
	c.Documents = docs
	// Render accepted these, or reported them above: an error here leaves
	// the zero value, which nothing serves while problems hold an error.
	c.Name, _ = delegation.ParseServerName(c.ServerName)
	c.Delegation.Delegated, _ = delegation.ParseServerName(c.Delegation.Server)
	c.Delegation.BaseURL, _, _ = delegation.ParseBaseURL(c.Delegation.ClientBaseURL)
	v.validateServerNamePort()
	if c.Delegation.MaxAge < 0 {
		v.errf("delegation.max_age", "must not be negative")
	} else if c.Delegation.MaxAge.Hours() > 48 {
		v.warnf("delegation.max_age", "is %s, but servers cap the well-known cache at 48h", c.Delegation.MaxAge)
	}
}

func (v *validator) validate() {
	c := v.cfg
	v.validateHosts()
	v.validateBaseDomain()
	v.validateListen()
	v.validateServedPorts()
	v.warnAdminOffLoopback()
	v.validateLimits()
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
	v.validateSlidingSync()
	v.validateRoutes()
	if c.ShutdownTimeout <= 0 {
		v.errf("shutdown_timeout", "must be more than 0, e.g. 10s")
	}
	v.validateSelfCheck()
}

// validateSelfCheck: an interval of 0 is off, a negative one a mistake;
// the notary is a server name.
func (v *validator) validateSelfCheck() {
	sc := &v.cfg.SelfCheck
	if sc.Interval < 0 {
		v.errf("self_check.interval", "must be 0 (off) or more, e.g. 10m")
	}
	if sc.Notary == "" {
		return
	}
	n, err := delegation.ParseServerName(sc.Notary)
	if err != nil {
		v.errf("self_check.notary", "%q: the notary's server name %v", sc.Notary, err)
		return
	}
	sc.NotaryName = n
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
		name := h
		if IsWildcard(h) {
			name = h[2:]
			if strings.Count(name, ".") == 0 {
				v.errf(field, "%q would cover every name under a top-level domain; a wildcard needs at least two labels after *.", h)
				valid = false
				continue
			}
		}
		if strings.Contains(name, "*") {
			v.errf(field, "%q: only a whole leftmost label may be a wildcard (*.example.com)", h)
			valid = false
			continue
		}
		if _, err := delegation.ParseHostname(name); err != nil {
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
		if HostEntry(c.Hosts, dh) == "" {
			v.warnf("delegation.server", "names host %q, which is not in hosts; this daemon will not answer for it (fine if another server does)", dh)
		}
	}
}

func (v *validator) validateBaseDomain() {
	b := &v.cfg.BaseDomain
	if b.Redirect != "" && b.Proxy != "" {
		v.errf("base_domain", "has both redirect and proxy; choose one")
	}
	if b.Redirect != "" {
		b.RedirectURL = v.httpURL("base_domain.redirect", b.Redirect)
	}
	if b.Proxy != "" {
		b.ProxyURL = v.httpURL("base_domain.proxy", b.Proxy)
	}
}

func (v *validator) validateListen() {
	l := v.cfg.Listen
	addrs := []struct{ field, addr string }{
		{"listen.http", l.HTTP}, {"listen.https", l.HTTPS}, {"listen.federation", l.Federation}, {"listen.admin", l.Admin},
		{"listen.metrics", l.Metrics},
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
	u := &v.cfg.Upstream
	u.Target = v.httpURL("upstream.url", u.URL)
	u.FederationTarget = u.Target
	if u.FederationURL != "" {
		u.FederationTarget = v.httpURL("upstream.federation_url", u.FederationURL)
	}
	if u.MaxBody <= 0 {
		v.errf("upstream.max_body", "must be more than 0, e.g. 100MiB")
	}
	for _, list := range []struct {
		field, risk string
		cidrs       []string
		parsed      *[]netip.Prefix
	}{
		{"upstream.trusted_proxies", "every client could then name its own address in X-Forwarded-For", u.TrustedProxies, &u.Trusted},
		{"upstream.expose_admin", "the homeserver's admin API (accounts, rooms, purges) would be open to the whole Internet", u.ExposeAdmin, &u.Admin},
	} {
		for i, c := range list.cidrs {
			p, err := parsePrefix(c)
			if err != nil {
				v.errf(list.field+"["+strconv.Itoa(i)+"]", "%s", err)
				continue
			}
			if p.Bits() == 0 {
				v.warnf(list.field+"["+strconv.Itoa(i)+"]", "%q matches every address: %s", c, list.risk)
			}
			*list.parsed = append(*list.parsed, p)
		}
	}
}

func (v *validator) validateLimits() {
	l := v.cfg.Limits
	for _, n := range []struct {
		field string
		value int
		min   int
	}{{"limits.max_conns", l.MaxConns, 0}, {"limits.upstream_conns", l.UpstreamConns, 1}, {"limits.h2_max_streams", l.H2MaxStreams, 1},
		{"limits.static_files", l.StaticFiles, 0}, {"limits.compress_encoders", l.CompressEncoders, 0}} {
		if n.value < n.min {
			v.errf(n.field, "is %d; it must be %d or more", n.value, n.min)
		}
	}
	if l.UpstreamWait < 0 {
		v.errf("limits.upstream_wait", "must not be negative")
	}
	if l.BodyIdleTimeout <= 0 {
		v.errf("limits.body_idle_timeout", "must be more than 0, e.g. 60s")
	}
	if l.BodyMinRate < 0 {
		v.errf("limits.body_min_rate", "must not be negative (0 turns it off)")
	}
	if l.StaticCache < 0 {
		v.errf("limits.static_cache", "must not be negative (0 keeps nothing)")
	}
	if l.SendTimeout <= 0 {
		v.errf("limits.send_timeout", "must be more than 0, e.g. 60s")
	}
	if l.BufferMemory < 64<<10 {
		v.errf("limits.buffer_memory", "is %s; it must be 64KiB or more, e.g. 64MiB (one request body's buffer is 64KiB)", l.BufferMemory)
	}
	// Every body is buffered whole: a budget smaller than the largest body
	// allowed would refuse that body every time.
	if l.BufferDisk < v.cfg.Upstream.MaxBody {
		v.errf("limits.buffer_disk", "is %s, less than upstream.max_body (%s): an upload that size could never be taken", l.BufferDisk, v.cfg.Upstream.MaxBody)
	}
	for i, rt := range v.cfg.Routes {
		if rt.MaxBody > l.BufferDisk {
			v.errf("limits.buffer_disk", "is %s, less than routes[%d].max_body (%s): an upload that size could never be taken", l.BufferDisk, i, rt.MaxBody)
		}
	}
	if l.BufferDir == "" {
		v.errf("limits.buffer_dir", "must name a directory for temporary files")
	}
}

// warnAdminOffLoopback warns when the admin listener (reload, status) may
// be reached from other machines: it has no authentication.
func (v *validator) warnAdminOffLoopback() {
	host, _, err := net.SplitHostPort(v.cfg.Listen.Admin)
	if err != nil || v.cfg.Listen.Admin == "" {
		return
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() || host == "localhost" {
		return
	}
	v.warnf("listen.admin", "%q is reachable from other machines, and its POST /reload and /status have no authentication; keep it on 127.0.0.1 and use listen.metrics for a remote Prometheus", v.cfg.Listen.Admin)
}

// httpURL parses a URL this daemon fetches or redirects to, reporting a bad
// one against field.
func (v *validator) httpURL(field, raw string) *url.URL {
	u, err := delegation.ParseHTTPURL(raw)
	if err != nil {
		v.errf(field, "%s", err)
	}
	return u
}

// parsePrefix parses a CIDR such as 10.0.0.0/8, or a single address as the
// prefix that holds only it.
func parsePrefix(s string) (netip.Prefix, error) {
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

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
