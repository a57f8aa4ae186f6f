package config

import (
	"strings"
	"testing"
)

func TestRouteProblems(t *testing.T) {
	dir := t.TempDir()
	base := `server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
hosts: [example.com, matrix.example.com, element.example.com]
tls: {mode: internal}
`
	for _, tc := range []struct {
		name, routes string
		want         []string
	}{
		{"valid", "  - {host: element.example.com, static: " + dir + "}\n  - {host: matrix.example.com, path: /sliding-sync/, upstream: \"http://127.0.0.1:8009\"}\n  - {path: /, upstream: \"http://127.0.0.1:8080\"}\n", nil},
		{"under /_matrix", "  - {path: /_matrix/client/unstable/org.matrix.msc3575, upstream: \"http://127.0.0.1:8009\"}\n", []string{
			`f.yaml:6: routes[0].path: "/_matrix/client/unstable/org.matrix.msc3575" overlaps /_matrix/, which is always the homeserver's (or the documents'); choose another prefix or a host of its own`}},
		{"the documents", "  - {host: example.com, path: /.well-known/matrix, static: " + dir + "}\n", []string{
			`f.yaml:6: routes[0].path: "/.well-known/matrix" overlaps /.well-known/matrix/, which is always the homeserver's (or the documents'); choose another prefix or a host of its own`}},
		{"each other", "  - {host: matrix.example.com, path: /app, static: " + dir + "}\n  - {host: matrix.example.com, path: /app/beta, upstream: \"http://127.0.0.1:8009\"}\n  - {path: /app/beta, upstream: \"http://127.0.0.1:8009\"}\n", []string{
			`f.yaml:7: routes[1].path: "/app/beta" overlaps routes[0] (matrix.example.com/app, line 6): each request must have one route`}},
		{"not in hosts", "  - {host: chat.example.com, static: " + dir + "}\n", []string{
			`f.yaml:6: routes[0].host: "chat.example.com" is not in hosts; add it there (certificates are obtained for hosts, and other names get 421)`}},
		{"both and neither", "  - {path: /a, static: " + dir + ", upstream: \"http://127.0.0.1:1\"}\n  - {path: /b}\n", []string{
			"f.yaml:6: routes[0]: needs exactly one of upstream (a server) and static (a directory)",
			"f.yaml:7: routes[1]: needs exactly one of upstream (a server) and static (a directory)"}},
		{"bad values", "  - {path: /a, upstream: \"http://127.0.0.1:1/prefix\"}\n  - {path: \"/b/../c\", static: relative/dir}\n  - {path: /d, static: " + dir + "/missing}\n", []string{
			`f.yaml:6: routes[0].upstream: "http://127.0.0.1:1/prefix": give a server as http://HOST:PORT or https://HOST, without path or credentials`,
			`f.yaml:7: routes[1].path: "/b/../c" is not a path prefix of plain segments, such as / or /element`,
			`f.yaml:7: routes[1].static: "relative/dir" must be an absolute path`,
			"f.yaml:8: routes[2].static: cannot be read: " + dir + "/missing: no such file or directory"}},
		{"root of the base domain", "  - {host: example.com, static: " + dir + "}\n", []string{
			"f.yaml:6: routes[0].path: / on example.com overlaps base_domain, which already answers there; use one or the other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := base
			if tc.name == "root of the base domain" {
				file += "base_domain: {redirect: \"https://www.example.com\"}\n"
				tc.want[0] = strings.Replace(tc.want[0], "f.yaml:6", "f.yaml:7", 1)
			}
			wantProblems(t, file+"routes:\n"+tc.routes, tc.want)
		})
	}
}
