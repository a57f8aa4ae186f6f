package config

import (
	"strings"
	"testing"
)

// TestDocumentPorts: a server name with a port is never delegated (an
// error), and a port the documents name that no listener serves for them
// is a warning that names the listeners.
func TestDocumentPorts(t *testing.T) {
	const base = `server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
hosts: [example.com, matrix.example.com]
listen: {http: ":80", https: ":443", federation: ":8448", admin: "127.0.0.1:9090"}
tls: {mode: internal}
`
	for _, tc := range []struct {
		name, old, new string
		want           []string
	}{
		{"the usual delegation", "", "", nil},
		{"server name with a port and a delegation", "server_name: example.com", "server_name: example.com:8448", []string{
			`f.yaml:1: server_name: "example.com:8448" has an explicit port, so it is never delegated: remote servers connect to it directly and never read /.well-known/matrix/server, and delegation.server "matrix.example.com:443" would be dead weight while federation goes to example.com:8448. The server name cannot change (it is in every user ID): set delegation.server to "example.com:8448"`,
		}},
		{"server name with a port, delegated to itself", "server_name: example.com\ndelegation: {server: \"matrix.example.com:443\"", "server_name: example.com:8448\ndelegation: {server: \"example.com:8448\"", nil},
		{"server name an IP address", "server_name: example.com\n", "server_name: 192.0.2.7\n", []string{
			`f.yaml:1: server_name: "192.0.2.7" has an IP address, so it is never delegated: remote servers connect to it directly and never read /.well-known/matrix/server, and delegation.server "matrix.example.com:443" would be dead weight while federation goes to 192.0.2.7. The server name cannot change (it is in every user ID): set delegation.server to "192.0.2.7"`,
			`f.yaml:3: hosts: does not include "192.0.2.7", the server name's host; the well-known documents would never be served there`,
		}},
		{"m.server on 8448 by default", `server: "matrix.example.com:443"`, `server: "matrix.example.com"`, nil},
		{"m.server on a port no listener serves", `server: "matrix.example.com:443"`, `server: "matrix.example.com:9999"`, []string{
			`f.yaml:2: warning: delegation.server: names port 9999, which no listener of this edge serves (listen.https is ":443", listen.federation ":8448"): remote servers connect to matrix.example.com:9999; fine only if a port mapping or a load balancer sends that port here`,
		}},
		{"base_url on the federation port, federation only", `client_base_url: "https://matrix.example.com"`, `client_base_url: "https://matrix.example.com:8448"`, []string{
			`f.yaml:2: warning: delegation.client_base_url: names port 8448, which is listen.federation, and that serves the federation API only: every client that logged in with this base_url gets 404 there. Set listen.federation_client_api: true`,
		}},
		{"base_url on the federation port, serving the client API", `client_base_url: "https://matrix.example.com"}`,
			`client_base_url: "https://matrix.example.com:8448"}` + "\nlisten: {federation_client_api: true}", nil},
		{"base_url on a port no listener serves", `client_base_url: "https://matrix.example.com"`, `client_base_url: "https://matrix.example.com:8443"`, []string{
			`f.yaml:2: warning: delegation.client_base_url: names port 8443, which no listener of this edge serves (listen.https is ":443", listen.federation ":8448"): clients connect to matrix.example.com:8443; fine only if a port mapping or a load balancer sends that port here`,
		}},
		{"a host served elsewhere is not this edge's to check", `server: "matrix.example.com:443"`, `server: "other.example.net:9999"`, []string{
			`f.yaml:2: warning: delegation.server: names host "other.example.net", which is not in hosts; this daemon will not answer for it (fine if another server does)`,
		}},
		{"ports chosen at start cannot be told", `https: ":443", federation: ":8448"`, `https: "127.0.0.1:0", federation: "127.0.0.1:0"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := base
			if tc.old != "" {
				if !strings.Contains(base, tc.old) {
					t.Fatalf("no %q in the base", tc.old)
				}
				file = strings.Replace(base, tc.old, tc.new, 1)
			}
			if strings.Count(file, "\nlisten:") == 2 {
				// The second listen line adds to the first.
				file = strings.Replace(strings.Replace(file, "\nlisten: {federation_client_api: true}", "", 1),
					`admin: "127.0.0.1:9090"}`, `admin: "127.0.0.1:9090", federation_client_api: true}`, 1)
			}
			wantProblems(t, file, tc.want)
		})
	}
}
