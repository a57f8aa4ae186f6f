package deploy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/generated from what the code writes now")

// TestGeneratedFiles pins the files init and adopt write, byte for byte, to
// testdata/generated: a change to one shows in review as a change to the
// file an operator gets. go test ./deploy -run TestGeneratedFiles -update
// rewrites them.
func TestGeneratedFiles(t *testing.T) {
	common := templateData{
		ServerName: "example.test", MServer: "matrix.example.test:443", BaseURL: "https://matrix.example.test",
		Hosts: []string{"example.test", "matrix.example.test"}, MaxBody: "100MB", Email: "admin@example.test",
		DendriteVersion: "v0.13.8", MaxFileSize: 100 << 20, StoragePath: "./jetstream", MediaPath: "./media",
		RegistrationSecret: `se"cret`, PostgresPassword: "it's",
	}
	// init's host layout: Dendrite on the system's PostgreSQL, supervised.
	host := common
	host.ValidateCmd = "wellknownd validate -config /srv/matrix/wellknownd.yaml"
	host.TLSMode, host.TLSStorage = "acme", "/srv/matrix/tls"
	host.UpstreamURL, host.DendriteReady = "http://127.0.0.1:8008", "http://127.0.0.1:8008/_dendrite/monitor/up"
	host.Supervise, host.SupervisePostgres = true, true
	host.DendriteBin, host.DendriteAddr, host.DendriteDir = "/usr/local/bin/dendrite", "127.0.0.1:8008", "/srv/matrix/dendrite"
	host.Database = "postgres://dendrite:it%27s@127.0.0.1/dendrite?sslmode=disable"
	// init's compose layout: SQLite, a local CA, a metrics listener.
	compose := common
	compose.ValidateCmd = "docker compose run --rm wellknownd validate"
	compose.TLSMode, compose.TLSStorage = "internal", "/var/lib/wellknownd/tls"
	compose.UpstreamURL, compose.DendriteReady = "http://dendrite:8008", "http://dendrite:8008/_dendrite/monitor/up"
	compose.Metrics, compose.DendriteDir = ":9100", "/etc/dendrite"
	// adopt of a compose project whose base_url named 8448, with a web site
	// on the server name and certificates from files.
	adopt := common
	adopt.Adopted, adopt.ValidateCmd = "docker-compose.yml and dendrite.yaml", "docker compose run --rm wellknownd validate"
	adopt.IdentityServer, adopt.ClientExtra = "https://vector.im", `{"im.vector.riot.e2ee": {"default": false}}`
	adopt.FederationClientAPI, adopt.Site = true, "http://web:80"
	adopt.TLSMode, adopt.CertFile, adopt.KeyFile = "files", "/etc/wellknownd/tls/cert.pem", "/etc/wellknownd/tls/key.pem"
	adopt.UpstreamURL, adopt.DendriteReady = "http://monolith:8008", "http://monolith:8008/_dendrite/monitor/up"
	adopt.Override = &composeOverride{
		ComposeFile: "docker-compose.yml", File: "docker-compose.override.yml", Dendrite: "monolith",
		Ports: []portChange{
			{Service: "monolith", Taken: []string{"8008:8008", "8448:8448"}},
			{Service: "web", Taken: []string{"80:80"}, Kept: []string{"- 8080:8080", "- target: 9000\n  published: 9000"}},
		},
		Build: "https://github.com/wellknownd/wellknownd.git", ImageUser: 65532,
		CertSource: "./tls/fullchain.pem", KeySource: "./tls/privkey.pem", Networks: []string{"default", "internal"},
	}

	for _, c := range []struct {
		path  string
		write func(*templateData) []byte
		data  *templateData
	}{
		{"init-host/wellknownd.yaml", wellknowndYAML, &host},
		{"init-host/dendrite.yaml", dendriteYAML, &host},
		{"init-host/postgres-init.sql", postgresInitSQL, &host},
		{"init-compose/wellknownd.yaml", wellknowndYAML, &compose},
		{"init-compose/dendrite.yaml", dendriteYAML, &compose},
		{"adopt-compose/wellknownd.yaml", wellknowndYAML, &adopt},
		{"adopt-compose/docker-compose.override.yml", composeOverrideYAML, &adopt},
	} {
		got := c.write(c.data)
		path := filepath.Join("testdata", "generated", c.path)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./deploy -run TestGeneratedFiles -update writes it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the code writes\n%s\nwhere %s holds\n%s", c.path, got, path, want)
		}
	}
}
