package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tlsBase = `server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
hosts: [example.com, matrix.example.com]
listen: {http: ":80", https: ":443", federation: ":8448", admin: "127.0.0.1:9090"}
tls:
`

func TestTLSProblems(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	cases := []struct {
		name, tls string
		want      []string
	}{
		{"acme without email or agreement", "  mode: acme\n", []string{
			"f.yaml:5: tls.email: is required with tls.mode acme (the CA warns there before a certificate expires); or set tls.agree: true to accept the CA's terms without one",
		}},
		{"acme with agreement", "  mode: acme\n  agree: true\n", nil},
		{"acme bad email", "  mode: acme\n  email: admin\n", []string{
			`f.yaml:7: tls.email: "admin" is not a bare e-mail address such as admin@example.com`,
		}},
		{"acme bad ca", "  mode: acme\n  email: a@example.com\n  ca: letsencrpyt\n", []string{
			`f.yaml:8: tls.ca: "letsencrpyt" is neither letsencrypt, letsencrypt-staging, zerossl nor an ACME directory URL (https://...)`,
		}},
		{"zerossl without key", "  mode: acme\n  email: a@example.com\n  ca: zerossl\n", []string{
			"f.yaml:5: tls.zerossl_api_key_file: is required with ca: zerossl",
		}},
		{"zerossl with tls-alpn-01 only", "  mode: acme\n  email: a@example.com\n  zerossl_api_key_file: " + garbage + "\n  challenges: [tls-alpn-01]\n", []string{
			"f.yaml:9: tls.challenges: ZeroSSL validates by http-01 or dns-01 (a CNAME record); add one of them",
		}},
		{"unreadable ca_root", "  mode: acme\n  email: a@example.com\n  ca_root: " + missing + "\n", []string{
			"f.yaml:8: tls.ca_root: cannot be read: " + missing + ": no such file or directory",
		}},
		{"unknown challenge", "  mode: acme\n  email: a@example.com\n  challenges: [http-01, dns01]\n", []string{
			`f.yaml:8: tls.challenges[1]: "dns01" is not a challenge type; valid: http-01, tls-alpn-01, dns-01`,
		}},
		{"dns-01 without provider", "  mode: acme\n  email: a@example.com\n  challenges: [dns-01]\n", []string{
			"f.yaml:5: tls.dns.provider: is required for dns-01; valid: cloudflare, digitalocean, gandi, hetzner, ovh, rfc2136, route53",
		}},
		{"unknown dns provider", "  mode: acme\n  email: a@example.com\n  challenges: [dns-01]\n  dns: {provider: powerdns, api_token_file: " + garbage + "}\n", []string{
			`f.yaml:9: tls.dns.provider: "powerdns" is not a supported DNS provider; valid: cloudflare, digitalocean, gandi, hetzner, ovh, rfc2136, route53`,
		}},
		{"public CA for localhost", "  mode: acme\n  email: a@example.com\n", []string{
			`f.yaml:3: hosts[0]: "localhost" cannot get a certificate from a public CA; use tls.mode internal (or files) for local and private names`,
		}},
		{"files without files", "  mode: files\n", []string{
			"f.yaml:5: tls.cert_file: is required with tls.mode files (a PEM chain, leaf first)",
			"f.yaml:5: tls.key_file: is required with tls.mode files (the PEM private key)",
		}},
		{"files missing", "  mode: files\n  cert_file: " + missing + "\n  key_file: " + missing + "\n", []string{
			"f.yaml:7: tls.cert_file: " + missing + " and " + missing + ": " + missing + ": no such file or directory",
		}},
		{"files garbage", "  mode: files\n  cert_file: " + garbage + "\n  key_file: " + garbage + "\n", []string{
			"f.yaml:7: tls.cert_file: " + garbage + " and " + garbage + ": tls: failed to find any PEM data in certificate input",
		}},
		{"tls without https listeners", "  mode: internal\n", nil},
		{"postgres storage", "  mode: acme\n  email: a@example.com\n  storage: postgres://wellknownd@db.example.com/certs\n  storage_password_file: " + garbage + "\n", nil},
		{"postgres storage with a password inline", "  mode: acme\n  email: a@example.com\n  storage: postgres://wellknownd:secret@db.example.com/certs\n", []string{
			"f.yaml:8: warning: tls.storage: holds a password; put it in tls.storage_password_file (or $PGPASSWORD) so that this file can stay readable",
		}},
		{"postgres storage without a database", "  mode: acme\n  email: a@example.com\n  storage: postgres://wellknownd:secret@db.example.com\n", []string{
			`f.yaml:8: tls.storage: "postgres://wellknownd:xxxxx@db.example.com" needs a host and a database: postgres://USER@HOST:5432/DATABASE`,
		}},
		{"postgres storage password file missing", "  mode: internal\n  storage: postgresql://wellknownd@db.example.com/certs\n  storage_password_file: " + missing + "\n", []string{
			"f.yaml:8: tls.storage_password_file: cannot be read: " + missing + ": no such file or directory",
		}},
		{"password file for a directory", "  mode: acme\n  email: a@example.com\n  storage: /var/lib/wellknownd\n  storage_password_file: " + garbage + "\n", []string{
			"f.yaml:9: tls.storage_password_file: is only for a postgres:// tls.storage",
		}},
		{"postgres storage with files", "  mode: files\n  cert_file: " + garbage + "\n  key_file: " + garbage + "\n  storage: postgres://wellknownd@db.example.com/certs\n", []string{
			"f.yaml:7: tls.cert_file: " + garbage + " and " + garbage + ": tls: failed to find any PEM data in certificate input",
			"f.yaml:9: tls.storage: is a database, but tls.mode files keeps nothing in storage; remove it or use mode acme",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := tlsBase + tc.tls
			if tc.name == "public CA for localhost" {
				file = strings.Replace(file, "hosts: [example.com, matrix.example.com]", "hosts: [localhost, example.com, matrix.example.com]", 1)
			}
			if tc.name == "tls without https listeners" {
				file = strings.Replace(file, `https: ":443", federation: ":8448"`, `https: "", federation: ""`, 1)
				tc.want = []string{"f.yaml:6: tls.mode: is internal, but listen.https and listen.federation are both off; nothing would use a certificate"}
			}
			wantProblems(t, file, tc.want)
		})
	}
}
