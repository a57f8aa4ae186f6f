package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDNSProblems(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bindKey := write("bind.key", "key \"wellknownd\" {\n\talgorithm hmac-sha256;\n\tsecret \"I1Z6Gry+fMSmAk/Gny74K6AW+v8WkBR/lzUsWm1zp5o=\";\n};\n")
	noSecret := write("nosecret.key", "key \"wellknownd\" {\n\talgorithm hmac-sha256;\n};\n")
	token := write("token", "dop_v1_abc\n")
	ovhTypo := write("ovh.env", "# from the OVH console\nOVH_APPLICATION_KEY=a\nOVH_APPLICATON_SECRET=b\n")
	ovhHalf := write("ovh-half.env", "OVH_APPLICATION_KEY=a\nexport OVH_APPLICATION_SECRET='b'\n")
	ovhFull := write("ovh-full.env", "OVH_APPLICATION_KEY=a\nexport OVH_APPLICATION_SECRET='b'\nOVH_CONSUMER_KEY=\"c\"\n")
	ovhOAuth := write("ovh-oauth.env", "OVH_CLIENT_ID=a\nOVH_CLIENT_SECRET=b\n")
	const acme = "  mode: acme\n  email: a@example.com\n  challenges: [dns-01]\n"
	cases := []struct {
		name, tls string
		env       map[string]string
		hosts     string
		want      []string
	}{
		{name: "rfc2136 needs a server and a key", tls: acme + "  dns: {provider: rfc2136}\n", want: []string{
			"f.yaml:9: tls.dns.rfc2136.server: is required with provider rfc2136: the primary nameserver taking updates, host:port",
			"f.yaml:9: tls.dns.rfc2136.tsig_key_file: is required with provider rfc2136: updates are only sent signed (tsig-keygen or keymgr -t makes a key)",
		}},
		{name: "rfc2136 with a key file", tls: acme + "  dns:\n    provider: rfc2136\n    rfc2136: {server: ns1.example.com, tsig_key_file: " + bindKey + ", zone: example.com}\n"},
		{name: "rfc2136 key without secret", tls: acme + "  dns:\n    provider: rfc2136\n    rfc2136: {server: \"192.0.2.1:53\", tsig_key_file: " + noSecret + "}\n", want: []string{
			"f.yaml:11: tls.dns.rfc2136.tsig_key_file: " + noSecret + ": key wellknownd has no secret",
		}},
		{name: "rfc2136 bad server", tls: acme + "  dns:\n    provider: rfc2136\n    rfc2136: {server: \"[::1\", tsig_key_file: " + bindKey + "}\n", want: []string{
			`f.yaml:11: tls.dns.rfc2136.server: "[::1" is not host or host:port: address [::1: missing ']' in address`,
		}},
		{name: "rfc2136 takes no credentials file", tls: acme + "  dns:\n    provider: rfc2136\n    credentials_file: " + ovhFull + "\n    rfc2136: {server: ns1.example.com, tsig_key_file: " + bindKey + "}\n", want: []string{
			"f.yaml:11: tls.dns.credentials_file: provider rfc2136 takes no credentials file; its secret is tls.dns.rfc2136.tsig_key_file",
		}},
		{name: "token from a file", tls: acme + "  dns: {provider: digitalocean, api_token_file: " + token + "}\n"},
		{name: "token from the environment", tls: acme + "  dns: {provider: hetzner}\n", env: map[string]string{"HETZNER_API_TOKEN": "x"}},
		{name: "no token anywhere", tls: acme + "  dns: {provider: gandi}\n", want: []string{
			"f.yaml:9: tls.dns.api_token_file: provider gandi has no credentials: put GANDIV5_PERSONAL_ACCESS_TOKEN in it (the token alone), tls.dns.credentials_file or the environment",
		}},
		{name: "api token for a provider without one", tls: acme + "  dns: {provider: ovh, api_token_file: " + token + "}\n", want: []string{
			"f.yaml:9: tls.dns.api_token_file: provider ovh takes no API token; see tls.dns.credentials_file",
		}},
		// Route 53 is in a binary built with -tags route53 (./test runs this
		// package both ways); without it, validation names the field and
		// how to get a build that has it.
		{name: "route53 finds its own credentials", tls: acme + "  dns:\n    provider: route53\n    route53: {region: eu-west-1}\n", want: route53Problems("f.yaml:10")},
		{name: "misspelt variable", tls: acme + "  dns: {provider: ovh, credentials_file: " + ovhTypo + "}\n", want: []string{
			"f.yaml:9: tls.dns.credentials_file: " + ovhTypo + ":3: OVH_APPLICATON_SECRET is not a variable of this provider; known: OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY, OVH_CLIENT_ID, OVH_CLIENT_SECRET",
		}},
		{name: "incomplete credentials", tls: acme + "  dns: {provider: ovh, credentials_file: " + ovhHalf + "}\n", want: []string{
			"f.yaml:9: tls.dns.credentials_file: provider ovh has no credentials: put OVH_APPLICATION_KEY + OVH_APPLICATION_SECRET + OVH_CONSUMER_KEY, or OVH_CLIENT_ID + OVH_CLIENT_SECRET in it or the environment",
		}},
		{name: "credentials file and environment together", tls: acme + "  dns: {provider: ovh, credentials_file: " + ovhHalf + "}\n", env: map[string]string{"OVH_CONSUMER_KEY": "c"}},
		{name: "ovh complete", tls: acme + "  dns:\n    provider: ovh\n    credentials_file: " + ovhFull + "\n    ovh: {endpoint: ovh-ca}\n"},
		{name: "ovh oauth2", tls: acme + "  dns: {provider: ovh, credentials_file: " + ovhOAuth + "}\n"},
		{name: "ovh bad endpoint", tls: acme + "  dns:\n    provider: ovh\n    credentials_file: " + ovhFull + "\n    ovh: {endpoint: ovh-mars}\n", want: []string{
			`f.yaml:12: tls.dns.ovh.endpoint: "ovh-mars" is neither ovh-eu, ovh-ca, ovh-us, kimsufi-eu, kimsufi-ca, soyoustart-eu, soyoustart-ca nor an https:// URL`,
		}},
		{name: "another provider's section", tls: acme + "  dns:\n    provider: digitalocean\n    api_token_file: " + token + "\n    rfc2136: {server: ns1.example.com}\n", want: []string{
			"f.yaml:12: tls.dns.rfc2136: is set, but tls.dns.provider is digitalocean",
		}},
		{name: "zerossl cname needs cloudflare", tls: acme + "  zerossl_api_key_file: " + token + "\n  dns: {provider: hetzner, api_token_file: " + token + "}\n", want: []string{
			"f.yaml:9: tls.zerossl_api_key_file: ZeroSSL's API validates by a CNAME record, which provider hetzner cannot write; add http-01 to tls.challenges or use cloudflare",
		}},
		{name: "wildcard with dns-01", hosts: `[example.com, "*.example.com"]`, tls: acme + "  dns: {provider: digitalocean, api_token_file: " + token + "}\n"},
		{name: "wildcard without dns-01", hosts: `[example.com, "*.example.com"]`, tls: "  mode: acme\n  email: a@example.com\n", want: []string{
			`f.yaml:3: hosts[1]: "*.example.com" is a wildcard; a CA validates a wildcard name only by dns-01, which is not in tls.challenges`,
		}},
		{name: "wildcard with a local CA", hosts: `[example.com, "*.example.com"]`, tls: "  mode: internal\n", want: []string{
			`f.yaml:3: hosts[1]: "*.example.com" is a wildcard, which only tls.mode acme with the dns-01 challenge serves`,
		}},
		{name: "wildcard over a top-level domain", hosts: `[example.com, matrix.example.com, "*.com"]`, tls: acme + "  dns: {provider: digitalocean, api_token_file: " + token + "}\n", want: []string{
			`f.yaml:3: hosts[2]: "*.com" would cover every name under a top-level domain; a wildcard needs at least two labels after *.`,
		}},
		{name: "wildcard inside a name", hosts: `[example.com, "matrix.*.example.com"]`, tls: acme + "  dns: {provider: digitalocean, api_token_file: " + token + "}\n", want: []string{
			`f.yaml:3: hosts[1]: "matrix.*.example.com": only a whole leftmost label may be a wildcard (*.example.com)`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"HETZNER_API_TOKEN", "GANDIV5_PERSONAL_ACCESS_TOKEN", "OVH_CONSUMER_KEY"} {
				t.Setenv(v, tc.env[v])
			}
			file := tlsBase + tc.tls
			if tc.hosts != "" {
				file = strings.Replace(file, "hosts: [example.com, matrix.example.com]", "hosts: "+tc.hosts, 1)
			}
			wantProblems(t, file, tc.want)
		})
	}
}

// route53Problems is what validating provider route53 at line says in this
// build: nothing with the route53 tag, else that the provider is not in it.
func route53Problems(line string) []string {
	if route53Built {
		return nil
	}
	return []string{line + ": tls.dns.provider: route53 is not in this build of wellknownd: it needs the AWS SDK, which is linked only when asked for " +
		"(go build -tags route53 ./cmd/wellknownd, or the image's --build-arg TAGS=route53); see docs/dns-01.md"}
}

func TestReadTSIGKey(t *testing.T) {
	dir := t.TempDir()
	const secret = "I1Z6Gry+fMSmAk/Gny74K6AW+v8WkBR/lzUsWm1zp5o="
	for name, content := range map[string]string{
		// tsig-keygen -a hmac-sha256 wellknownd
		"bind": "key \"wellknownd\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + secret + "\";\n};\n",
		// the same on one line, as in a named.conf include
		"bind one line": `key "wellknownd" { algorithm HMAC-SHA256; secret "` + secret + `"; };`,
		// keymgr -t wellknownd hmac-sha256
		"knot": "# hmac-sha256:wellknownd:" + secret + "\nkey:\n  - id: wellknownd\n    algorithm: hmac-sha256\n    secret: " + secret + "\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, []byte(content), 0o600)
		k, err := ReadTSIGKey(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if (k != TSIGKey{Name: "wellknownd", Algorithm: "hmac-sha256", Secret: secret}) {
			t.Errorf("%s: read %+v", name, k)
		}
	}
	for name, c := range map[string]struct{ content, want string }{
		"empty":      {"", "holds no TSIG key"},
		"two keys":   {`key "a" { algorithm hmac-sha256; secret "` + secret + `"; }; key "b" { algorithm hmac-sha256; secret "` + secret + `"; };`, "holds 2 keys"},
		"md5":        {`key "a" { algorithm hmac-md5; secret "` + secret + `"; };`, `algorithm "hmac-md5" is not one of`},
		"not base64": {`key "a" { algorithm hmac-sha256; secret "not base64!"; };`, "the secret is not base64"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, []byte(c.content), 0o600)
		if _, err := ReadTSIGKey(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.want)
		}
	}
}

func TestWildcardCovers(t *testing.T) {
	for _, c := range []struct {
		wild, name string
		want       bool
	}{
		{"*.example.com", "matrix.example.com", true},
		{"*.example.com", "Matrix.Example.COM", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "*.example.com", false},
		{"*.example.com", "matrix.example.org", false},
		{"example.com", "example.com", false},
	} {
		if got := WildcardCovers(c.wild, c.name); got != c.want {
			t.Errorf("WildcardCovers(%q, %q) = %v", c.wild, c.name, got)
		}
	}
	if got := CertificateNames([]string{"Example.com", "matrix.example.com", "*.Example.com", "a.b.example.com"}); strings.Join(got, " ") != "example.com *.example.com a.b.example.com" {
		t.Errorf("CertificateNames = %v", got)
	}
}
