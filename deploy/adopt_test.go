package deploy

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/localca"
)

// existingDendrite writes a deployment as Dendrite's own docker directory
// has it: its compose file (from the v0.13.8 release), and in ./config a
// dendrite.yaml with the given extra top-level text and a signing key.
func existingDendrite(t *testing.T, dendriteYAML string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	os.MkdirAll(filepath.Join(dir, "config"), 0o755)
	write(t, filepath.Join(dir, "docker-compose.yml"), string(dendritetest.SourceFile(t, "build/docker/docker-compose.yml")))
	write(t, filepath.Join(dir, "config", "dendrite.yaml"), dendriteYAML)
	key, _, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "config", "matrix_key.pem"), string(key))
	return dir
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

const minimalDendrite = `version: 2
global:
  server_name: example.com
  private_key: matrix_key.pem
  well_known_server_name: ""
  well_known_client_name: ""
media_api:
  max_file_size_bytes: 52428800
sync_api:
  real_ip_header: ""
`

// adoptIn runs Adopt on the deployment in dir with Dendrite's files where
// its docker directory has them.
func adoptIn(dir string, o AdoptOptions) (*Adoption, error) {
	o.DendriteConfig = filepath.Join(dir, "config", "dendrite.yaml")
	if o.Compose == nil && o.Host == nil {
		o.Compose = &ComposeOptions{File: filepath.Join(dir, "docker-compose.yml")}
	}
	return Adopt(o)
}

func fileOf(t *testing.T, a *Adoption, name string) string {
	t.Helper()
	for _, f := range a.Files {
		if f.Path == name {
			return string(f.Data)
		}
	}
	t.Fatalf("adopt writes no %s", name)
	return ""
}

func TestAdoptCompose(t *testing.T) {
	dir := existingDendrite(t, minimalDendrite)
	key, _ := os.ReadFile(filepath.Join(dir, "config", "matrix_key.pem"))
	blk, _ := pem.Decode(key)
	a, err := adoptIn(dir, AdoptOptions{Delegate: "matrix.example.com", ServerName: "example.com"})
	if err != nil {
		t.Fatal(err)
	}

	// The configuration: valid as it stands, delegating as asked, proxying
	// to the compose service, with Dendrite's media limit.
	cfgText := fileOf(t, a, "wellknownd.yaml")
	cfg, problems := config.Parse("wellknownd.yaml", []byte(cfgText))
	if len(problems) > 0 {
		t.Fatalf("the written configuration: %v\n%s", problems, cfgText)
	}
	if cfg.ServerName != "example.com" || cfg.Delegation.Server != "matrix.example.com:443" || cfg.Delegation.ClientBaseURL != "https://matrix.example.com" ||
		cfg.Upstream.URL != "http://monolith:8008" || cfg.Upstream.MaxBody != 50<<20 || strings.Join(cfg.Hosts, " ") != "example.com matrix.example.com" ||
		cfg.TLS.Mode != "acme" || cfg.TLS.Email != "admin@example.com" {
		t.Errorf("the written configuration:\n%s", cfgText)
	}

	// The override: Dendrite publishes nothing, wellknownd the three ports,
	// on Dendrite's network.
	var override struct {
		Services map[string]struct {
			Ports    yaml.Node
			Networks []string
			Volumes  []string
		}
		Volumes map[string]any
	}
	text := fileOf(t, a, "docker-compose.override.yml")
	if err := yaml.Unmarshal([]byte(text), &override); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if p := override.Services["monolith"].Ports; p.Tag != "!reset" || len(p.Content) != 0 {
		t.Errorf("monolith's ports in the override: %s %d entries\n%s", p.Tag, len(p.Content), text)
	}
	wk := override.Services["wellknownd"]
	if strings.Join(wk.Networks, " ") != "internal" || len(wk.Ports.Content) != 5 || wk.Volumes[0] != "./wellknownd.yaml:/etc/wellknownd/wellknownd.yaml:ro" ||
		override.Volumes["wellknownd"] == nil || len(override.Services) != 2 {
		t.Errorf("the override:\n%s", text)
	}

	// What it says: the key kept, and where Dendrite's config should change.
	if !strings.Contains(strings.Join(a.Kept, "\n"), "the signing key "+blk.Headers["Key-ID"]) {
		t.Errorf("Kept does not name the signing key: %q", a.Kept)
	}
	if len(a.DendriteEdits) != 1 || a.DendriteEdits[0].Field != "sync_api.real_ip_header" || a.DendriteEdits[0].Line != 10 {
		t.Errorf("Dendrite edits: %v", a.DendriteEdits)
	}
	if a.Dir != dir || len(a.Start) != 1 || a.Rollback[0] != "cd "+dir+" && rm docker-compose.override.yml && docker compose up -d --remove-orphans" {
		t.Errorf("steps: %q %q", a.Start, a.Rollback)
	}
}

// TestAdoptTakesPortsFromAnyService: a reverse proxy that published 80
// and 443 gives those up and keeps its other ports.
func TestAdoptTakesPortsFromAnyService(t *testing.T) {
	dir := existingDendrite(t, minimalDendrite)
	write(t, filepath.Join(dir, "compose.yaml"), `services:
  caddy:
    image: caddy:2
    ports: ["80:80", "127.0.0.1:443:443/tcp", "2019:2019", {target: 8448, published: "8448"}]
  dendrite:
    image: ghcr.io/element-hq/dendrite-monolith:v0.13.8
    command: ["-config", "/etc/dendrite/dendrite.yaml", "--http-bind-address=:8080"]
    volumes: ["./config:/etc/dendrite"]
`)
	a, err := adoptIn(dir, AdoptOptions{Compose: &ComposeOptions{File: filepath.Join(dir, "compose.yaml")}, Delegate: "matrix.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	text := fileOf(t, a, "compose.override.yaml")
	if !strings.Contains(text, "  caddy:\n    ports: !override   # without 80:80, 127.0.0.1:443:443/tcp, {target=8448 published=8448}\n      - \"2019:2019\"\n") ||
		strings.Contains(text, "  dendrite:\n") || !strings.Contains(text, "networks: [default]") {
		t.Errorf("the override:\n%s", text)
	}
	if !strings.Contains(fileOf(t, a, "wellknownd.yaml"), `url: "http://dendrite:8080"`) {
		t.Errorf("the upstream is not Dendrite's -http-bind-address port:\n%s", fileOf(t, a, "wellknownd.yaml"))
	}
}

// TestAdoptDelegationFromDendrite: with nothing fetched, Dendrite's own
// well-known settings say where it is served, and they are kept as they
// are, ports included: a base_url on 8448 has the federation listener
// serve the client API.
func TestAdoptDelegationFromDendrite(t *testing.T) {
	dir := existingDendrite(t, strings.NewReplacer(`well_known_server_name: ""`, `well_known_server_name: "matrix.example.com:8448"`,
		`well_known_client_name: ""`, `well_known_client_name: "https://matrix.example.com:8448"`,
		`real_ip_header: ""`, `real_ip_header: X-Forwarded-For`).Replace(minimalDendrite))
	a, err := adoptIn(dir, AdoptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := fileOf(t, a, "wellknownd.yaml")
	if !strings.Contains(cfg, `server: "matrix.example.com:8448"`) || !strings.Contains(cfg, `client_base_url: "https://matrix.example.com:8448"`) ||
		!strings.Contains(cfg, "  federation_client_api: true") {
		t.Errorf("delegation:\n%s", cfg)
	}
	if len(a.DendriteEdits) != 0 {
		t.Errorf("Dendrite edits: %v", a.DendriteEdits)
	}
}

func TestAdoptFiles(t *testing.T) {
	dir := existingDendrite(t, minimalDendrite)
	ca := localca.New(t)
	certFor := func(names ...string) {
		c := ca.Issue(t, names...)
		key, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		write(t, filepath.Join(dir, "config", "server.crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})))
		write(t, filepath.Join(dir, "config", "server.key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})))
	}
	o := AdoptOptions{Delegate: "matrix.example.com", TLSMode: "files",
		CertFile: filepath.Join(dir, "config", "server.crt"), KeyFile: filepath.Join(dir, "config", "server.key")}

	// The certificate Dendrite served federation with names only its host.
	certFor("matrix.example.com")
	_, err := adoptIn(dir, o)
	if err == nil || !strings.Contains(err.Error(), "not example.com") || !strings.Contains(err.Error(), "acme.sh --issue -d example.com -d matrix.example.com") {
		t.Fatalf("a certificate without the server name: %v", err)
	}

	certFor("matrix.example.com", "example.com")
	a, err := adoptIn(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	text := fileOf(t, a, "docker-compose.override.yml")
	for _, want := range []string{"- ./config/server.crt:/etc/wellknownd/tls/cert.pem:ro", "- ./config/server.key:/etc/wellknownd/tls/key.pem:ro"} {
		if !strings.Contains(text, want) {
			t.Errorf("the override lacks %q:\n%s", want, text)
		}
	}
	// A 0600 key is not readable by the image's user: adopt says how.
	if want := "chgrp 65532 " + o.KeyFile + " && chmod 640 " + o.KeyFile; len(a.Before) != 1 || a.Before[0] != want {
		t.Errorf("Before = %q, want %q", a.Before, want)
	}
	os.Chmod(o.KeyFile, 0o644)
	if a, _ := adoptIn(dir, o); len(a.Before) != 0 {
		t.Errorf("a readable key still needs %q", a.Before)
	}
}

func TestAdoptHost(t *testing.T) {
	dir := existingDendrite(t, minimalDendrite)
	out := filepath.Join(t.TempDir(), "wk")
	a, err := Adopt(AdoptOptions{DendriteConfig: filepath.Join(dir, "config", "dendrite.yaml"), Delegate: "matrix.example.com",
		Host: &HostOptions{Upstream: "http://127.0.0.1:8008", Dir: out, WellknowndBin: "/usr/local/bin/wellknownd"}})
	if err != nil {
		t.Fatal(err)
	}
	cfgText := fileOf(t, a, "wellknownd.yaml")
	if cfg, problems := config.Parse("wellknownd.yaml", []byte(cfgText)); len(problems) > 0 || cfg.Upstream.URL != "http://127.0.0.1:8008" || cfg.TLS.Storage != filepath.Join(out, "tls") {
		t.Errorf("the configuration: %v\n%s", problems, cfgText)
	}
	if unit := fileOf(t, a, "wellknownd.service"); !strings.Contains(unit, "ExecStart=/usr/local/bin/wellknownd serve -config "+filepath.Join(out, "wellknownd.yaml")) {
		t.Errorf("the unit:\n%s", unit)
	}
	if !strings.Contains(a.Before[0], "-http-bind-address 127.0.0.1:8008") {
		t.Errorf("Before: %q", a.Before)
	}
	a, err = Adopt(AdoptOptions{DendriteConfig: filepath.Join(dir, "config", "dendrite.yaml"), Delegate: "matrix.example.com",
		Host: &HostOptions{Upstream: "http://10.0.0.5:8008", Dir: out}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(a.Warnings, "\n"), "bypasses the edge") {
		t.Errorf("no warning for a Dendrite that listens off loopback: %q", a.Warnings)
	}
}

// TestAdoptRefuses: bad input is an error that names the file (and line),
// and nothing is written.
func TestAdoptRefuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dendrite string
		prepare  func(dir string)
		o        AdoptOptions
		want     []string
	}{
		{name: "dendrite.yaml does not parse", dendrite: "global:\n  server_name: [example.com\n",
			o: AdoptOptions{Delegate: "matrix.example.com"}, want: []string{"config/dendrite.yaml:", "not valid YAML"}},
		{name: "another server", dendrite: minimalDendrite, o: AdoptOptions{ServerName: "example.org", Delegate: "matrix.example.org"},
			want: []string{"config/dendrite.yaml:3: global.server_name: is \"example.com\", not \"example.org\""}},
		{name: "no server name", dendrite: "version: 2\nglobal:\n  private_key: matrix_key.pem\n", o: AdoptOptions{Delegate: "matrix.example.com"},
			want: []string{"global.server_name: is not set"}},
		{name: "no delegation known", dendrite: minimalDendrite, o: AdoptOptions{},
			want: []string{"config/dendrite.yaml:5: global.well_known_server_name", "-delegate"}},
		{name: "no Dendrite service", dendrite: minimalDendrite, o: AdoptOptions{Delegate: "matrix.example.com"},
			prepare: func(dir string) {
				write(t, filepath.Join(dir, "docker-compose.yml"), "services:\n  web:\n    image: nginx\n    ports: [\"80:80\"]\n")
			},
			want: []string{"docker-compose.yml: services: has no Dendrite service"}},
		{name: "an override already there", dendrite: minimalDendrite, o: AdoptOptions{Delegate: "matrix.example.com"},
			prepare: func(dir string) {
				write(t, filepath.Join(dir, "docker-compose.override.yml"), "services: {}\n")
			},
			want: []string{"docker-compose.override.yml already exists", "Nothing was written"}},
		{name: "a wellknownd service already there", dendrite: minimalDendrite, o: AdoptOptions{Delegate: "matrix.example.com"},
			prepare: func(dir string) {
				b, _ := os.ReadFile(filepath.Join(dir, "docker-compose.yml"))
				write(t, filepath.Join(dir, "docker-compose.yml"), strings.Replace(string(b), "  monolith:\n", "  wellknownd:\n    image: wellknownd:latest\n  monolith:\n", 1))
			},
			want: []string{"services.wellknownd: already exists"}},
		{name: "files without a certificate", dendrite: minimalDendrite, o: AdoptOptions{Delegate: "matrix.example.com", TLSMode: "files"},
			want: []string{"-tls files needs -cert-file and -key-file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := existingDendrite(t, tc.dendrite)
			if tc.prepare != nil {
				tc.prepare(dir)
			}
			before := listing(t, dir)
			_, err := adoptIn(dir, tc.o)
			if err == nil {
				t.Fatal("adopt did not refuse")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if after := listing(t, dir); after != before {
				t.Errorf("files changed:\n%s\n->\n%s", before, after)
			}
		})
	}
}

// listing is every file under dir with its contents' size and mode.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			data, _ := os.ReadFile(p)
			b.WriteString(p + " " + fi.Mode().String() + " " + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}

// TestAdoptNeedsOneMode: the options of both modes, or of neither, are
// refused before anything is read.
func TestAdoptNeedsOneMode(t *testing.T) {
	for _, o := range []AdoptOptions{
		{DendriteConfig: "/nonexistent/dendrite.yaml"},
		{DendriteConfig: "/nonexistent/dendrite.yaml", Compose: &ComposeOptions{File: "docker-compose.yml"}, Host: &HostOptions{}},
	} {
		if _, err := Adopt(o); err == nil || !strings.Contains(err.Error(), "exactly one of AdoptOptions.Compose and AdoptOptions.Host") {
			t.Errorf("Adopt(%+v): %v", o, err)
		}
	}
}
