package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validFile = `server_name: example.com
delegation:
  server: matrix.example.com:443
  client_base_url: https://matrix.example.com
  identity_server: https://vector.im
  client_extra:
    org.matrix.msc3575.proxy: {url: https://sync.example.com}
  support:
    contacts:
      - {matrix_id: "@admin:example.com", email_address: admin@example.com, role: m.role.admin}
    support_page: https://example.com/support
  max_age: 4h
hosts: [example.com, matrix.example.com]
base_domain:
  redirect: https://www.example.com
listen:
  http: ":80"
  https: ""
  federation: ""
  admin: "127.0.0.1:9090"
tls:
  mode: "off"
upstream:
  url: http://127.0.0.1:8008
`

func TestParseValid(t *testing.T) {
	cfg, problems := Parse("wellknownd.yaml", []byte(validFile))
	if len(problems) != 0 {
		t.Fatalf("problems in a valid file:\n%v", problems)
	}
	if cfg.ServerName != "example.com" || cfg.Delegation.Server != "matrix.example.com:443" ||
		cfg.Delegation.MaxAge != 4*time.Hour || cfg.Delegation.Support.Contacts[0].Role != "m.role.admin" ||
		cfg.BaseDomain.Redirect != "https://www.example.com" || cfg.Listen.Admin != "127.0.0.1:9090" ||
		cfg.ShutdownTimeout != 10*time.Second {
		t.Fatalf("decoded %+v", cfg)
	}
	if got := cfg.Delegation.ClientExtra["org.matrix.msc3575.proxy"].(map[string]any)["url"]; got != "https://sync.example.com" {
		t.Fatalf("client_extra = %#v", cfg.Delegation.ClientExtra)
	}
}

func TestDefaultsFilled(t *testing.T) {
	cfg, problems := Parse("min.yaml", []byte("server_name: example.com\ndelegation:\n  server: matrix.example.com\n  client_base_url: https://matrix.example.com\ntls:\n  email: admin@example.com\n"))
	if len(problems.Errors()) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if strings.Join(cfg.Hosts, ",") != "example.com,matrix.example.com" {
		t.Errorf("default hosts = %v", cfg.Hosts)
	}
	if cfg.Listen.HTTP != ":80" || cfg.Listen.HTTPS != ":443" || cfg.Listen.Federation != ":8448" || cfg.TLS.Mode != TLSACME || cfg.TLS.CA != "letsencrypt" || strings.Join(cfg.TLS.Challenges, ",") != "http-01,tls-alpn-01" || cfg.Delegation.MaxAge != 4*time.Hour {
		t.Errorf("defaults not filled: %+v", cfg)
	}
	// Default listeners are not warned about: the user did not set them.
	if len(problems) != 0 {
		t.Errorf("warnings for defaults: %v", problems)
	}
}

func TestBuiltInIsValid(t *testing.T) {
	cfg, problems := Parse("(built-in config)", []byte(BuiltIn))
	if len(problems.Errors()) != 0 {
		t.Fatalf("built-in config: %v", problems)
	}
	if cfg.Listen.HTTP != "127.0.0.1:8080" || cfg.ServerName != "localhost" {
		t.Fatalf("built-in config = %+v", cfg)
	}
}

// replace swaps one line of validFile for another (or several).
func replace(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(validFile, old) {
		t.Fatalf("validFile has no %q", old)
	}
	return strings.Replace(validFile, old, new, 1)
}

func TestProblems(t *testing.T) {
	cases := []struct {
		name string
		old  string
		new  string
		want []string // each problem's full text, in order
	}{
		{"unknown top-level key", "hosts:", "hostz: [x]\nhosts:", []string{
			`f.yaml:13: hostz: unknown field (did you mean "hosts"?); valid fields here: server_name, delegation, hosts, base_domain, listen, tls, upstream, routes, sliding_sync, compression, limits, shutdown_timeout, log, self_check, supervise`,
		}},
		{"unknown nested key", "  max_age: 4h", "  max_age: 4h\n  maxage: 4h", []string{
			`f.yaml:13: delegation.maxage: unknown field (did you mean "max_age"?); valid fields here: server, client_base_url, identity_server, client_extra, support, max_age`,
		}},
		{"unknown key far from any", "  max_age: 4h", "  max_age: 4h\n  flavour: vanilla", []string{
			`f.yaml:13: delegation.flavour: unknown field; valid fields here: server, client_base_url, identity_server, client_extra, support, max_age`,
		}},
		{"wrong type: list for string", "server_name: example.com", "server_name: [example.com]", []string{
			`f.yaml:1: server_name: must be a single text value, not a list`,
		}},
		{"wrong type: string for list", "hosts: [example.com, matrix.example.com]", "hosts: example.com", []string{
			`f.yaml:13: hosts: must be a list, e.g. [a, b] or one '- item' per line`,
		}},
		{"wrong type: scalar for mapping", "base_domain:\n  redirect: https://www.example.com", "base_domain: https://www.example.com", []string{
			`f.yaml:14: base_domain: must be a mapping of redirect, proxy`,
		}},
		{"bad duration", "max_age: 4h", "max_age: 4 hours", []string{
			`f.yaml:12: delegation.max_age: "4 hours" is not a duration; write it like 30s, 15m or 4h`,
		}},
		{"negative max_age", "max_age: 4h", "max_age: -1s", []string{
			`f.yaml:12: delegation.max_age: must not be negative`,
		}},
		{"max_age above the cap", "max_age: 4h", "max_age: 72h", []string{
			`f.yaml:12: warning: delegation.max_age: is 72h0m0s, but servers cap the well-known cache at 48h`,
		}},
		{"m.server with scheme", "server: matrix.example.com:443", "server: https://matrix.example.com:443", []string{
			`f.yaml:3: delegation.server: has a scheme ("https://"); a server name is host[:port], e.g. matrix.example.com:443`,
		}},
		{"m.server bad port", "server: matrix.example.com:443", "server: matrix.example.com:0", []string{
			`f.yaml:3: delegation.server: has port "0"; a port is 1 to 65535`,
		}},
		{"m.server host not in hosts", "server: matrix.example.com:443", "server: other.example.net:443", []string{
			`f.yaml:3: warning: delegation.server: names host "other.example.net", which is not in hosts; this daemon will not answer for it (fine if another server does)`,
		}},
		{"base_url without scheme", "client_base_url: https://matrix.example.com", "client_base_url: matrix.example.com", []string{
			`f.yaml:4: delegation.client_base_url: "matrix.example.com" is not an absolute URL; write it with its scheme, e.g. https://matrix.example.com`,
		}},
		{"base_url http", "client_base_url: https://matrix.example.com", "client_base_url: http://matrix.example.com", []string{
			`f.yaml:4: delegation.client_base_url: "http://matrix.example.com" is plain http; clients need https (http is accepted only for localhost)`,
		}},
		{"base_url http localhost warns", "client_base_url: https://matrix.example.com", "client_base_url: http://localhost:8008", []string{
			`f.yaml:4: warning: delegation.client_base_url: "http://localhost:8008" is plain http; clients elsewhere than this machine will refuse it`,
		}},
		{"identity server without scheme", "identity_server: https://vector.im", "identity_server: vector.im", []string{
			`f.yaml:5: delegation.identity_server: "vector.im" is not an absolute URL; write it with its scheme, e.g. https://vector.im`,
		}},
		{"client_extra overrides m.homeserver", "    org.matrix.msc3575.proxy: {url: https://sync.example.com}", "    org.matrix.msc3575.proxy: {url: https://sync.example.com}\n    m.homeserver: {base_url: https://elsewhere}", []string{
			`f.yaml:8: delegation.client_extra.m.homeserver: is written from delegation.client_base_url; set it there, not in client_extra`,
		}},
		{"client_extra bad sliding sync url", "{url: https://sync.example.com}", "{url: sync.example.com}", []string{
			`f.yaml:7: delegation.client_extra.org.matrix.msc3575.proxy.url: "sync.example.com" must start with http:// or https://`,
		}},
		{"support empty", "    contacts:\n      - {matrix_id: \"@admin:example.com\", email_address: admin@example.com, role: m.role.admin}\n    support_page: https://example.com/support", "    contacts: []", []string{
			`f.yaml:8: delegation.support: has neither contacts nor a support_page; the spec requires at least one`,
		}},
		{"support bad role", "role: m.role.admin}", "role: admin}", []string{
			`f.yaml:10: delegation.support.contacts[0].role: "admin" is neither m.role.admin, m.role.security nor namespaced (e.g. org.example.role.billing)`,
		}},
		{"support bad matrix id and email", `{matrix_id: "@admin:example.com", email_address: admin@example.com`, `{matrix_id: "admin", email_address: "admin at example.com"`, []string{
			`f.yaml:10: delegation.support.contacts[0].matrix_id: "admin" must start with '@', e.g. @admin:example.com`,
			`f.yaml:10: delegation.support.contacts[0].email_address: "admin at example.com" is not a bare e-mail address such as admin@example.com`,
		}},
		{"support contact unknown field", `role: m.role.admin}`, `role: m.role.admin, phone: 123}`, []string{
			`f.yaml:10: delegation.support.contacts[0].phone: unknown field; valid fields here: matrix_id, email_address, role`,
		}},
		{"hosts without the server name", "hosts: [example.com, matrix.example.com]", "hosts: [matrix.example.com]", []string{
			`f.yaml:13: hosts: does not include "example.com", the server name's host; the well-known documents would never be served there`,
		}},
		{"hosts with port and duplicate", "hosts: [example.com, matrix.example.com]", "hosts:\n  - example.com\n  - matrix.example.com:443\n  - Example.com", []string{
			`f.yaml:15: hosts[1]: "matrix.example.com:443" has a port (443); give the hostname alone`,
			`f.yaml:16: hosts[2]: "Example.com" is listed twice (also hosts[0])`,
		}},
		{"base domain with both", "  redirect: https://www.example.com", "  redirect: https://www.example.com\n  proxy: http://127.0.0.1:8080", []string{
			`f.yaml:14: base_domain: has both redirect and proxy; choose one`,
		}},
		{"base domain bad redirect", "redirect: https://www.example.com", "redirect: www.example.com", []string{
			`f.yaml:15: base_domain.redirect: "www.example.com" must start with http:// or https://`,
		}},
		{"listen not host:port", `http: ":80"`, `http: "80"`, []string{
			`f.yaml:17: listen.http: "80" is not host:port (e.g. :443 or 127.0.0.1:9090)`,
		}},
		{"listen bad port", `http: ":80"`, `http: ":http"`, []string{
			`f.yaml:17: listen.http: ":http" has port "http"; a port is a number from 0 to 65535`,
		}},
		{"listen twice the same", `admin: "127.0.0.1:9090"`, `admin: ":80"`, []string{
			`f.yaml:20: listen.admin: ":80" is also listen.http; each listener needs its own address`,
		}},
		{"https ignored when tls off", `https: ""`, `https: ":443"`, []string{
			`f.yaml:18: warning: listen.https: is not started: tls.mode is off, so everything is served on listen.http`,
		}},
		{"nothing to serve", `http: ":80"`, `http: ""`, []string{
			`f.yaml:17: listen.http: is off, but tls.mode off serves everything there; nothing would be served`,
		}},
		{"bad tls mode", `mode: "off"`, `mode: "sometimes"`, []string{
			`f.yaml:22: tls.mode: "sometimes" is not a TLS mode; valid: acme, files, internal, off`,
		}},
		{"bad upstream", "url: http://127.0.0.1:8008", "url: 127.0.0.1:8008", []string{
			`f.yaml:24: upstream.url: "127.0.0.1:8008" must start with http:// or https://`,
		}},
		{"syntax error", "hosts: [example.com, matrix.example.com]", "hosts: example.com: matrix.example.com", []string{
			`f.yaml:13: is not valid YAML: mapping values are not allowed in this context`,
		}},
		{"unclosed list", "hosts: [example.com, matrix.example.com]", "hosts: [example.com, matrix.example.com", []string{
			`f.yaml:13: is not valid YAML: did not find expected ',' or ']'`,
		}},
		{"key indented wrongly", "  client_base_url: https://matrix.example.com", " client_base_url: https://matrix.example.com", []string{
			`f.yaml:4: is not valid YAML: did not find expected key`,
		}},
		{"tab in indentation", "  client_base_url: https://matrix.example.com", "\tclient_base_url: https://matrix.example.com", []string{
			`f.yaml:4: is not valid YAML: found a tab character that violates indentation`,
		}},
		{"duplicate key", "server_name: example.com", "server_name: example.com\nserver_name: example.org", []string{
			`f.yaml:2: server_name: is set twice (first on line 1); keep one`,
		}},
		{"two documents", "upstream:", "---\nupstream:", []string{
			`f.yaml:23: holds more than one YAML document (a '---' line); keep one`,
		}},
		{"admin listener off loopback", `admin: "127.0.0.1:9090"`, `admin: "0.0.0.0:9090"`, []string{
			`f.yaml:20: warning: listen.admin: "0.0.0.0:9090" is reachable from other machines, and its POST /reload and /status have no authentication; keep it on 127.0.0.1 and use listen.metrics for a remote Prometheus`,
		}},
		{"expose_admin and trusted_proxies everywhere", "url: http://127.0.0.1:8008", "url: http://127.0.0.1:8008\n  trusted_proxies: [\"::/0\"]\n  expose_admin: [10.0.0.0/8, 0.0.0.0/0]", []string{
			`f.yaml:25: warning: upstream.trusted_proxies[0]: "::/0" matches every address: every client could then name its own address in X-Forwarded-For`,
			`f.yaml:26: warning: upstream.expose_admin[1]: "0.0.0.0/0" matches every address: the homeserver's admin API (accounts, rooms, purges) would be open to the whole Internet`,
		}},
		{"bad limits", "server_name: example.com", "server_name: example.com\nlimits: {upstream_conns: 0, body_idle_timeout: 0s, h2_max_streams: -1}", []string{
			`f.yaml:2: limits.upstream_conns: is 0; it must be 1 or more`,
			`f.yaml:2: limits.h2_max_streams: is -1; it must be 1 or more`,
			`f.yaml:2: limits.body_idle_timeout: must be more than 0, e.g. 60s`,
		}},
		{"bad self_check", "server_name: example.com", "server_name: example.com\nself_check:\n  interval: -1m\n  notary: https://matrix.org", []string{
			`f.yaml:3: self_check.interval: must be 0 (off) or more, e.g. 10m`,
			`f.yaml:4: self_check.notary: "https://matrix.org": the notary's server name has a scheme ("https://"); a server name is host[:port], e.g. matrix.org`,
		}},
		{"all problems at once", "server_name: example.com", "server_name: example.com\nbogus: 1\nshutdown_timeout: 0s", []string{
			`f.yaml:2: bogus: unknown field; valid fields here: server_name, delegation, hosts, base_domain, listen, tls, upstream, routes, sliding_sync, compression, limits, shutdown_timeout, log, self_check, supervise`,
			`f.yaml:3: shutdown_timeout: must be more than 0, e.g. 10s`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblems(t, replace(t, tc.old, tc.new), tc.want)
		})
	}
}

func TestEmptyFile(t *testing.T) {
	_, problems := Parse("e.yaml", nil)
	if len(problems) != 1 || problems[0].String() != "e.yaml: the file is empty; it needs at least server_name and delegation" {
		t.Fatalf("empty file: %v", problems)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !os.IsNotExist(err) && (err == nil || !strings.Contains(err.Error(), "no such file")) {
		t.Fatalf("Load(missing) = %v", err)
	}
}

// FuzzParse feeds arbitrary files to the decoder and validator: they must
// never panic, and a file they accept must render its documents.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validFile))
	f.Add([]byte(BuiltIn))
	f.Add([]byte("server_name: [\n"))
	f.Add([]byte("delegation: {client_extra: {a: [1, {b: c}]}, support: {contacts: [{}]}}"))
	f.Add([]byte("hosts: &a [x]\nbase_domain: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, problems := Parse("fuzz.yaml", data)
		for _, p := range problems {
			if p.Msg == "" {
				t.Fatalf("problem without a message: %+v", p)
			}
		}
		if len(problems.Errors()) == 0 {
			// What downstream code takes must be resolved whenever
			// validation passed: it never parses the text again.
			if cfg.Documents.Server.Body == nil || cfg.Documents.Client.Body == nil {
				t.Fatalf("accepted config has no rendered documents:\n%s", data)
			}
			if cfg.Name.Host == "" || cfg.Delegation.Delegated.Host == "" || cfg.Delegation.BaseURL == nil || cfg.Upstream.Target == nil || cfg.Upstream.FederationTarget == nil {
				t.Fatalf("accepted config left a value unresolved: %+v\n%s", cfg, data)
			}
			if len(cfg.Upstream.Trusted) != len(cfg.Upstream.TrustedProxies) || len(cfg.Upstream.Admin) != len(cfg.Upstream.ExposeAdmin) {
				t.Fatalf("accepted config left networks unparsed:\n%s", data)
			}
			for _, rt := range cfg.Routes {
				if (rt.Upstream != "") != (rt.Target != nil) {
					t.Fatalf("accepted route %+v has no target:\n%s", rt, data)
				}
			}
			for _, e := range cfg.Supervise {
				if e.Signal == 0 || (e.Ready.HTTP != "") != (e.Ready.URL != nil) {
					t.Fatalf("accepted supervise entry %+v left a value unresolved:\n%s", e, data)
				}
			}
		}
	})
}

// wantProblems parses file as f.yaml and fails the test unless its
// problems are exactly want, in order.
func wantProblems(t *testing.T, file string, want []string) *Config {
	t.Helper()
	cfg, problems := Parse("f.yaml", []byte(file))
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	return cfg
}
