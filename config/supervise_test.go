package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSuperviseProblems(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "dendrite")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	base := `server_name: example.com
delegation: {server: "matrix.example.com:443", client_base_url: "https://matrix.example.com"}
listen: {http: ":80", https: "", federation: "", admin: "127.0.0.1:9090"}
tls: {mode: "off"}
supervise:
`
	cases := []struct{ name, entries, want string }{
		{"valid", "  - {name: pg, command: [/bin/true], ready: {tcp: '127.0.0.1:5432'}}\n  - {name: dendrite, command: [/bin/true], after: [pg], ready: {http: 'http://127.0.0.1:8008/_dendrite/monitor/up'}}\n  - {name: compose, ready: {http: 'http://dendrite:8008/_dendrite/monitor/up'}}\n", ""},
		{"missing binary", "  - {name: dendrite, command: [/usr/bin/no-such-dendrite]}\n",
			"f.yaml:6: supervise[0].command[0]: /usr/bin/no-such-dendrite does not exist"},
		{"not executable", "  - {name: dendrite, command: [" + notExec + "]}\n",
			"f.yaml:6: supervise[0].command[0]: " + notExec + " is not executable (chmod +x)"},
		{"a directory", "  - {name: dendrite, command: [" + dir + "]}\n",
			"f.yaml:6: supervise[0].command[0]: " + dir + " is a directory, not a program"},
		{"not on PATH", "  - {name: dendrite, command: [no-such-dendrite]}\n",
			`f.yaml:6: supervise[0].command[0]: "no-such-dendrite" is not found on $PATH; give its absolute path`},
		{"neither command nor probe", "  - {name: ghost}\n",
			"f.yaml:6: supervise[0]: has neither a command to run nor a ready probe to watch"},
		{"duplicate name", "  - {name: a, command: [/bin/true]}\n  - {name: a, command: [/bin/true]}\n",
			`f.yaml:7: supervise[1].name: "a" is also supervise[0]'s name`},
		{"unknown after", "  - {name: a, command: [/bin/true], after: [postgres]}\n",
			`f.yaml:6: supervise[0].after[0]: "postgres" names no supervise entry`},
		{"cycle", "  - {name: a, command: [/bin/true], after: [b]}\n  - {name: b, command: [/bin/true], after: [a]}\n",
			"f.yaml:5: supervise: after has a cycle: a -> b -> a"},
		{"both probes", "  - {name: a, command: [/bin/true], ready: {http: 'http://x', tcp: 'x:1'}}\n",
			"f.yaml:6: supervise[0].ready: has both http and tcp; choose one"},
		{"bad signal", "  - {name: a, command: [/bin/true], stop_signal: SIGSTOP}\n",
			`f.yaml:6: supervise[0].stop_signal: "SIGSTOP" is not a stop signal; valid: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2`},
		{"bad tcp probe", "  - {name: a, ready: {tcp: '5432'}}\n",
			`f.yaml:6: supervise[0].ready.tcp: "5432" is not host:port`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := wantProblems(t, base+tc.entries, []string{tc.want})
			if tc.name == "valid" && (cfg.Supervise[0].StopSignal != "SIGTERM" || cfg.Supervise[0].StopTimeout.Seconds() != 30) {
				t.Fatalf("defaults not filled: %+v", cfg.Supervise[0])
			}
		})
	}
}
