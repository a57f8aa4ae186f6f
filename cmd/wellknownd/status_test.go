package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// statusOf runs "wellknownd status" against the daemon and returns what
// it printed and its error (nil is exit 0).
func statusOf(t *testing.T, d *daemon, flags ...string) (string, error) {
	t.Helper()
	var out, errOut strings.Builder
	err := run(context.Background(), append([]string{"status", "-config", d.configPath}, flags...), &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestStatusCommand: "wellknownd status" prints the running daemon's state
// and exits 0 while the homeserver is up; with a homeserver process that
// keeps exiting it exits 1 and says what is wrong, in text and -json.
func TestStatusCommand(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) }))
	t.Cleanup(up.Close)
	healthy := startDaemon(t, edgeConfig(up.URL, edgeconf.Listen("127.0.0.1:0", "", "", freeport.Addr(t))), "http", "admin")
	healthy.waitStatus("the homeserver ready", 20*time.Second, func(st statusDoc) bool { return st.UpstreamReady })
	// A request, for the hour's count.
	healthy.do("GET", "http", "example.com", "/.well-known/matrix/server").Body.Close()
	out, err := statusOf(t, healthy)
	if err != nil {
		t.Errorf("status of a healthy daemon: %v\n%s", err, out)
	}
	for _, want := range []string{"homeserver: ready", "Everything is fine.", "self-check: not run yet", "last hour: 1 requests, 0 errors",
		"http         " + healthy.addrs["http"] + " (plain)", "upstream " + up.URL} {
		if !strings.Contains(out, want) {
			t.Errorf("status of a healthy daemon lacks %q:\n%s", want, out)
		}
	}

	down := startDaemon(t, edgeConfig(up.URL, edgeconf.Listen("127.0.0.1:0", "", "", freeport.Addr(t)))+`supervise:
  - name: dendrite
    command: ["sh", "-c", "exit 3"]
    ready: {tcp: "`+freeport.Addr(t)+`"}
`, "http", "admin")
	// Its readiness probe goes where nothing listens, so it is never
	// ready; between two exits it is restarted (starting) for a moment:
	// read the status once it is in backoff, again if a restart came
	// between the two reads.
	if werr := wait.For(60*time.Second, func() error {
		out, err = statusOf(t, down)
		if !errors.Is(err, errReported) || !strings.Contains(out, "dendrite     backoff") {
			return fmt.Errorf("status with dendrite down: %v, want exit 1 and dendrite in backoff\n%s", err, out)
		}
		return nil
	}); werr != nil {
		t.Error(werr)
	}
	for _, want := range []string{"homeserver: NOT READY", "dendrite     backoff", "last exit status 3, ", "problems:", "  - the homeserver is not ready",
		"  - dendrite is down (backoff), last exit status 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("status with dendrite down lacks %q:\n%s", want, out)
		}
	}
	t.Logf("status with dendrite down:\n%s", out)
	out, err = statusOf(t, down, "-json")
	var doc struct {
		Problems []string `json:"problems"`
	}
	if jerr := json.Unmarshal([]byte(out), &doc); jerr != nil || !errors.Is(err, errReported) || len(doc.Problems) == 0 {
		t.Errorf("status -json with dendrite down: %v, %v, problems %q\n%s", err, jerr, doc.Problems, out)
	}
	down.stop()
	if out, err := statusOf(t, down); err == nil || !strings.Contains(fmt.Sprint(err), "reaching the daemon") {
		t.Errorf("status of a stopped daemon: %v\n%s", err, out)
	}
}
