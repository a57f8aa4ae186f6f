package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
)

// TestSelfCheck: once ready, serve checks itself as "wellknownd check"
// would, logs the result and exports it; on a correct deployment (the real
// Dendrite behind it, certificates from the internal CA) every check passes.
func TestSelfCheck(t *testing.T) {
	den := dendritetest.Setup(t, dendritetest.Options{ServerName: "localhost"})
	cmd, _ := json.Marshal(den.Command())
	cfg := internalConfig(t.TempDir()) + fmt.Sprintf(`upstream: {url: %s}
supervise:
  - name: dendrite
    command: %s
    dir: %s
    ready: {http: "%s/_dendrite/monitor/up"}
`, den.URL, cmd, den.Dir, den.URL)
	d := startDaemon(t, cfg, "https", "federation", "admin")
	d.waitLog("self-check:", 2*time.Minute)
	time.Sleep(100 * time.Millisecond)
	logs := d.stderr.String()
	if !strings.Contains(logs, "self-check: every check passed") {
		t.Fatalf("self-check failed on a correct deployment:\n%s", logs)
	}
	metrics := readBody(t, d.do("GET", "admin", "localhost", "/metrics"))
	for _, want := range []string{
		`wellknownd_selfcheck_ok{check="well-known server document"} 1`,
		`wellknownd_selfcheck_ok{check="well-known client document"} 1`,
		`wellknownd_selfcheck_ok{check="client API versions"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// localhost:8448 is the federation listener (its port is chosen at
	// start): the keys came from the real Dendrite through it.
	if !strings.Contains(metrics, `wellknownd_selfcheck_ok{check="federation keys over IPv4"} 1`) {
		t.Errorf("no passing signing-key self-check for the federation listener:\n%s", grepLines(metrics, "selfcheck"))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
