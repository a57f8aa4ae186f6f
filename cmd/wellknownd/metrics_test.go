package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// metricValue finds one sample's value in a Prometheus text exposition.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no sample %s in /metrics", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMetricsAfterTraffic(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"versions":["v1.11"]}`))
	}))
	defer up.Close()
	cfg := internalConfig(t.TempDir(), edgeconf.Hosts("localhost", "matrix.localhost")) +
		"upstream: {url: \"" + up.URL + "\"}\nsupervise:\n  - name: homeserver\n    ready: {http: \"" + up.URL + "/health\"}\n"
	d := startDaemon(t, cfg, "http", "https", "admin")
	d.waitStatus("probe-only entry ready", 10*time.Second, func(s statusDoc) bool { return s.UpstreamReady })
	// The self-check fetches the documents too: its requests are counted
	// before the test's own.
	if err := wait.For(60*time.Second, func() error {
		if log := d.stderr.String(); strings.Contains(log, "self-check: every check passed") || strings.Contains(log, "self-check: some checks failed") {
			return nil
		}
		return errors.New("no self-check yet")
	}); err != nil {
		t.Fatal(err)
	}
	// What it counted (on the documents of localhost) is the baseline.
	before := readBody(t, d.do("GET", "admin", "localhost", "/metrics"))
	selfChecked := func(series string) float64 {
		if !strings.Contains(before, "\n"+series+" ") {
			return 0
		}
		return metricValue(t, before, series)
	}
	wk200 := `wellknownd_http_requests_total{code="200",host="localhost",route="wellknown"}`
	wk404 := `wellknownd_http_requests_total{code="404",host="localhost",route="wellknown"}`
	wkCount := `wellknownd_http_request_duration_seconds_count{host="localhost",route="wellknown"}`
	base200, base404, baseCount := selfChecked(wk200), selfChecked(wk404), selfChecked(wkCount)

	for range 3 {
		readBody(t, d.do("GET", "http", "localhost", "/.well-known/matrix/client"))
	}
	readBody(t, d.do("GET", "http", "localhost", "/.well-known/matrix/nope"))
	readBody(t, d.do("GET", "http", "evil.example", "/.well-known/matrix/client"))
	readBody(t, d.do("GET", "http", "matrix.localhost", "/_matrix/client/versions")) // 308 to https

	resp := d.do("GET", "admin", "localhost", "/metrics")
	text := readBody(t, resp)
	checks := map[string]float64{
		wk200: 3 + base200,
		wk404: 1 + base404,
		`wellknownd_http_requests_total{code="421",host="unknown",route="wellknown"}`:       1,
		`wellknownd_http_requests_total{code="308",host="matrix.localhost",route="client"}`: 1,
		wkCount:                                       4 + baseCount,
		`wellknownd_http_requests_in_flight`:          0,
		`wellknownd_upstream_up`:                      1,
		`wellknownd_supervised_up{name="homeserver"}`: 1,
		`wellknownd_supervised_state{name="homeserver",state="ready"}`:   1,
		`wellknownd_supervised_state{name="homeserver",state="backoff"}`: 0,
		`wellknownd_supervised_restarts_total{name="homeserver"}`:        0,
		`wellknownd_certificate_events_total{event="obtained"}`:          2,
		`wellknownd_certificate_events_total{event="failed"}`:            0,
		`wellknownd_proxy_errors_total{kind="refused"}`:                  0,
		`wellknownd_build_info{version="` + versionNumber() + `"}`:       1,
	}
	for series, want := range checks {
		if got := metricValue(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, name := range []string{"localhost", "matrix.localhost"} {
		exp := metricValue(t, text, `wellknownd_certificate_not_after_timestamp_seconds{name="`+name+`"}`)
		if left := time.Until(time.Unix(int64(exp), 0)); left < 29*24*time.Hour || left > 31*24*time.Hour {
			t.Errorf("certificate for %s expires in %s, want the internal CA's 30 days", name, left)
		}
	}

	// promtool (Debian's prometheus package) agrees the names follow the
	// conventions.
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader([]byte(text))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}

	// /readyz: listeners, certificates and upstream all there.
	ready := d.do("GET", "admin", "localhost", "/readyz")
	if b := readBody(t, ready); ready.StatusCode != 200 || b != "ready\n" {
		t.Fatalf("/readyz: %d %s", ready.StatusCode, b)
	}
	// The upstream goes away: not ready, but still alive.
	up.Close()
	d.waitStatus("probe-only entry unhealthy", 30*time.Second, func(s statusDoc) bool { return !s.UpstreamReady })
	ready = d.do("GET", "admin", "localhost", "/readyz")
	if b := readBody(t, ready); ready.StatusCode != 503 || !strings.Contains(b, "the homeserver is not ready") {
		t.Fatalf("/readyz with the upstream gone: %d %s", ready.StatusCode, b)
	}
	if live := d.do("GET", "admin", "localhost", "/healthz"); readBody(t, live) != "ok\n" {
		t.Fatal("/healthz failed while the upstream is down")
	}
}

// TestMetricsListener: listen.metrics serves /metrics and the health probes
// to whoever reaches it, and nothing that changes or reveals the stack.
func TestMetricsListener(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	cfg := edgeConfig(up.URL, edgeconf.Listen("127.0.0.1:0", "", "", "127.0.0.1:0", `metrics: "127.0.0.1:0"`))
	d := startDaemon(t, cfg, "http", "metrics")
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/metrics", 200, "wellknownd_build_info"},
		{"GET", "/healthz", 200, "ok\n"},
		{"GET", "/readyz", 0, "ready"},
		{"GET", "/status", 404, ""},
		{"POST", "/reload", 404, ""},
	} {
		resp := d.do(tc.method, "metrics", "10.0.0.5:9100", tc.path)
		body := readBody(t, resp)
		if (tc.code != 0 && resp.StatusCode != tc.code) || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s on the metrics listener: %d %.100q", tc.method, tc.path, resp.StatusCode, body)
		}
	}
}
