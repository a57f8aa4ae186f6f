package edgeconf_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
)

// TestConfigurationsParse: what the builders make is a valid configuration,
// and the base is the one the package documents.
func TestConfigurationsParse(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o600)
	for name, yaml := range map[string]string{
		"plain":    edgeconf.Plain("http://127.0.0.1:1", "1KiB", "trusted_proxies: [127.0.0.0/8]"),
		"internal": edgeconf.New(edgeconf.Listen("127.0.0.1:0", "127.0.0.1:0", "", "", "http3: false"), edgeconf.Internal(dir, "hsts: {max_age: 1h}")),
		"names": edgeconf.New(edgeconf.Names("localhost", "localhost:8448", "https://localhost"),
			edgeconf.Listen("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"), edgeconf.Internal(dir)),
		"wildcard": edgeconf.New(edgeconf.Names("example.test", "matrix.example.test:443", "https://matrix.example.test"),
			edgeconf.Hosts("example.test", "*.example.test"), edgeconf.Listen("127.0.0.1:0", "127.0.0.1:0", "", ""),
			edgeconf.ACME("https://127.0.0.1:14000/dir", file, dir, "challenges: [dns-01]", "dns: {provider: cloudflare, api_token_file: "+file+"}")),
		"shared": edgeconf.SharedEdge(2, 80, 443, "https://127.0.0.1:14000/dir", file, "postgres://wellknownd@127.0.0.1:5432/wellknownd", file),
	} {
		if _, problems := config.Parse(name, []byte(yaml)); len(problems.Errors()) > 0 {
			t.Errorf("%s: %v\n%s", name, problems.Errors(), yaml)
		}
	}
	cfg, _ := config.Parse("plain", []byte(edgeconf.Plain("http://127.0.0.1:1", "1KiB")))
	if !slices.Equal(cfg.Hosts, []string{"example.com", "matrix.example.com"}) || cfg.TLS.Mode != config.TLSOff ||
		cfg.Listen.HTTP != "127.0.0.1:0" || cfg.Listen.Admin != "127.0.0.1:0" || cfg.Listen.HTTPS != "" || cfg.Upstream.MaxBody != 1<<10 {
		t.Errorf("the base: hosts %v, tls %s, listen %+v, max_body %d", cfg.Hosts, cfg.TLS.Mode, cfg.Listen, cfg.Upstream.MaxBody)
	}
}
