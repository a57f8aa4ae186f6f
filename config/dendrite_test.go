package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDendriteCrossCheck: validate reads the dendrite.yaml a supervised
// Dendrite is started with, and names the file, line and key where it
// disagrees with wellknownd's own config.
func TestDendriteCrossCheck(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dendrite")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	good := `version: 2
global:
  server_name: example.com
  well_known_server_name: "matrix.example.com:443"
  well_known_client_name: "https://matrix.example.com"
client_api:
  registration_shared_secret: "s3cret"
media_api:
  max_file_size_bytes: 10485760
`
	cases := []struct {
		name, old, new string
		want           []string
	}{
		{"agrees", "", "", nil},
		{"wrong server name", "server_name: example.com", "server_name: example.org", []string{
			`D:3: global.server_name: is "example.org", but wellknownd's server_name is "example.com"; users and rooms would be named after the wrong server`,
		}},
		{"well-known server differs", `"matrix.example.com:443"`, `"matrix.example.com"`, []string{
			`D:4: warning: global.well_known_server_name: is "matrix.example.com", but delegation.server is "matrix.example.com:443"`,
		}},
		{"well-known client differs", `"https://matrix.example.com"`, `"https://example.com"`, []string{
			`D:5: warning: global.well_known_client_name: is "https://example.com", but delegation.client_base_url is "https://matrix.example.com"`,
		}},
		{"no shared secret", `registration_shared_secret: "s3cret"`, `registration_shared_secret: ""`, []string{
			`D:7: warning: client_api.registration_shared_secret: is empty; "wellknownd register" creates accounts with it, without opening registration`,
		}},
		{"media limit above the edge's", "10485760", "209715200", []string{
			`D:9: warning: media_api.max_file_size_bytes: is 209715200, above upstream.max_body (100MiB): uploads between the two are refused at the edge`,
		}},
		{"not YAML", "client_api:\n", "client_api: [\n", []string{
			`D:6: is not valid YAML: did not find expected ',' or ']'`,
		}},
		{"empty", good, "", []string{
			`D: is empty; Dendrite needs its configuration (wellknownd init writes one)`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			den := filepath.Join(t.TempDir(), "dendrite.yaml")
			body := good
			if tc.old != "" {
				if !strings.Contains(body, tc.old) {
					t.Fatalf("%q is not in the fixture", tc.old)
				}
				body = strings.Replace(body, tc.old, tc.new, 1)
			}
			os.WriteFile(den, []byte(body), 0o600)
			_, problems := Parse("f.yaml", []byte(`server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
listen: {http: ":80", https: "", federation: "", admin: "127.0.0.1:9090"}
tls: {mode: "off"}
supervise:
  - {name: dendrite, command: [`+bin+`, -config, `+den+`]}
`))
			var got []string
			for _, p := range problems {
				got = append(got, strings.ReplaceAll(p.String(), den, "D"))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	// A dendrite.yaml that cannot be read is named by the supervise entry.
	_, problems := Parse("f.yaml", []byte(`server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
listen: {http: ":80", https: "", federation: "", admin: "127.0.0.1:9090"}
tls: {mode: "off"}
supervise:
  - {name: dendrite, command: [`+bin+`, -config, dendrite.yaml], dir: `+dir+`}
`))
	if want := "f.yaml:5: supervise: dendrite: Dendrite's configuration cannot be read: " + filepath.Join(dir, "dendrite.yaml") + ": no such file or directory"; len(problems) != 1 || problems[0].String() != want {
		t.Fatalf("missing dendrite.yaml: %v\nwant: %s", problems, want)
	}
}
