package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
)

// TestSupervisedLogLines: what a supervised process logs in logrus's text
// format or as JSON lines reaches the daemon's log once, at the level it
// stated, with its own message and fields and the process's name; a plain
// line is logged at info as written. When the daemon stops it, its end is
// said by the signal's name.
func TestSupervisedLogLines(t *testing.T) {
	script := `echo 'time="2025-01-02T03:04:05Z" level=warning msg="disk nearly full" component=mediaapi' >&2
echo 'time="2025-01-02T03:04:06Z" level=error msg="database is locked" func=storage.Open' >&2
echo '{"level":"warn","msg":"slow federation request","ms":4012,"time":"2025-01-02T03:04:07Z"}'
echo '{"level":"error","message":"cannot reach matrix.org","time":"2025-01-02T03:04:08Z"}'
echo 'time="2025-01-02T03:04:09Z" level=debug msg="debug noise"' >&2
echo 'plain words, no level'
echo ready > ready
exec sleep 600`
	// The script is a file: the "started" line names the command, and
	// the messages must appear in the log only as the child logs them.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "chatty.sh"), script)
	cmd, _ := json.Marshal([]string{"sh", "chatty.sh"})
	d := startDaemon(t, edgeConfig("http://127.0.0.1:1")+fmt.Sprintf(`supervise:
  - name: chatty
    command: %s
    dir: %s
    stop_timeout: 5s
`, cmd, dir), "http", "admin")
	d.waitLog("plain words, no level", 20*time.Second)
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	logs := d.stderr.String()
	for _, want := range []string{
		`level=WARN msg="disk nearly full" process=chatty component=mediaapi stream=stderr`,
		`level=ERROR msg="database is locked" process=chatty func=storage.Open stream=stderr`,
		`level=WARN msg="slow federation request" process=chatty ms=4012 stream=stdout`,
		`level=ERROR msg="cannot reach matrix.org" process=chatty stream=stdout`,
		`level=INFO msg="plain words, no level" process=chatty stream=stdout`,
		`level=INFO msg=stopping process=chatty signal=SIGTERM timeout=5s`,
		`level=INFO msg=stopped process=chatty exit="killed by SIGTERM"`,
	} {
		if n := strings.Count(logs, want); n != 1 {
			t.Errorf("%d lines with %s; want 1", n, want)
		}
	}
	for _, once := range []string{"disk nearly full", "database is locked", "slow federation request", "cannot reach matrix.org"} {
		if n := strings.Count(logs, once); n != 1 {
			t.Errorf("%q appears %d times in the log; want once", once, n)
		}
	}
	// Below the daemon's level (info), a child's debug line is not logged.
	if strings.Contains(logs, "debug noise") || strings.Contains(logs, "2025-01-02") {
		t.Errorf("a debug line or a child's own timestamp reached the log")
	}
	if t.Failed() {
		t.Logf("the daemon's log:\n%s", logs)
	}
}

// TestJSONLogDurationsAndStoppedLine: with log.format json, every line the
// daemon writes is one JSON object, durations are strings as Go writes
// them ("10s"), and the last line says it stopped and how long it ran; the
// text format ends the same way.
func TestJSONLogDurationsAndStoppedLine(t *testing.T) {
	d := startDaemon(t, exampleConfig+"shutdown_timeout: 1m30s\nlog: {format: json}\n", "http", "admin")
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(d.stderr.String(), "\n"), "\n")
	var records []map[string]any
	for _, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("a log line that is not JSON: %q", l)
		}
		records = append(records, r)
	}
	var drain any
	for _, r := range records {
		if r["msg"] == "shutting down" {
			drain = r["drain_timeout"]
		}
	}
	if drain != "1m30s" {
		t.Errorf(`"drain_timeout": %#v; want "1m30s"`, drain)
	}
	last := records[len(records)-1]
	ran, _ := last["ran"].(string)
	if last["msg"] != "stopped" || last["level"] != "INFO" || ran == "" {
		t.Errorf("the last line: %v; want msg stopped at INFO with how long it ran", last)
	}
	if _, err := time.ParseDuration(ran); err != nil {
		t.Errorf(`"ran": %q is not a duration: %v`, ran, err)
	}

	d = startDaemon(t, exampleConfig, "http", "admin")
	d.stop()
	lines = strings.Split(strings.TrimSuffix(d.stderr.String(), "\n"), "\n")
	if last := lines[len(lines)-1]; !regexp.MustCompile(`^time=\S+ level=INFO msg=stopped ran=[0-9.]+m?s$`).MatchString(last) {
		t.Errorf("the text log's last line: %q", last)
	}
}

// TestInternalCAHint: in tls.mode internal, the command the log suggests
// for trying the certificates works as printed: curl fetches the client
// document from the listener's real port, trusting the internal CA. No
// attribute of the certificate lines is <nil>.
func TestInternalCAHint(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl to run the hint with")
	}
	d := startDaemon(t, edgeconf.New(edgeconf.Listen("127.0.0.1:0", "127.0.0.1:0", "", "127.0.0.1:0", "http3: false"),
		edgeconf.Internal(filepath.Join(t.TempDir(), "tls"))), "http", "https", "admin")
	if strings.Contains(d.stderr.String(), "<nil>") {
		t.Errorf("a <nil> attribute in the log:\n%s", d.stderr)
	}
	if !strings.Contains(d.stderr.String(), `msg="certificate: obtaining" component=certs name=example.com renewal=false`) {
		t.Errorf("no first obtaining line with renewal=false:\n%s", d.stderr)
	}
	m := regexp.MustCompile(`msg="internal CA: trust this root to verify the certificates" component=certs root=\S+ example="([^"]+)"`).FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("no hint in the log:\n%s", d.stderr)
	}
	_, port, _ := strings.Cut(d.addrs["https"], ":")
	if !strings.Contains(m[1], ":"+port+"/") {
		t.Errorf("the hint %q does not name the listener's port %s", m[1], port)
	}
	args := strings.Fields(m[1])
	if args[0] != "curl" {
		t.Fatalf("the hint is not a curl command: %q", m[1])
	}
	out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "20"}, args[1:]...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"m.homeserver":{"base_url":"https://matrix.example.com"}`) {
		t.Fatalf("%s: %v\n%s", m[1], err, out)
	}
}
