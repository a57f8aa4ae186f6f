package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// statusDoc is the admin listener's /status.
type statusDoc struct {
	UpstreamReady bool `json:"upstream_ready"`
	Supervised    []struct {
		Name         string `json:"name"`
		State        string `json:"state"`
		PID          int    `json:"pid"`
		Restarts     int    `json:"restarts"`
		CrashLooping bool   `json:"crash_looping"`
		LastExit     *struct {
			Code   int    `json:"code"`
			Signal string `json:"signal"`
		} `json:"last_exit"`
	} `json:"supervised"`
}

func (d *daemon) status() statusDoc {
	d.t.Helper()
	resp := d.do("GET", "admin", "localhost", "/status")
	defer resp.Body.Close()
	var st statusDoc
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		d.t.Fatalf("/status: %v", err)
	}
	return st
}

func (d *daemon) waitStatus(what string, timeout time.Duration, ok func(statusDoc) bool) statusDoc {
	d.t.Helper()
	var st statusDoc
	if err := wait.For(timeout, func() error {
		if st = d.status(); ok(st) {
			return nil
		}
		return fmt.Errorf("status %+v", st)
	}); err != nil {
		d.t.Fatalf("waiting for %s: %v\n%s", what, err, d.stderr)
	}
	return st
}

func supervisedConfig(den *dendritetest.Dendrite) string {
	cmd, _ := json.Marshal(den.Command())
	return edgeConfig(den.URL) + fmt.Sprintf(`supervise:
  - name: dendrite
    command: %s
    dir: %s
    ready: {http: "%s/_dendrite/monitor/up"}
    stop_timeout: 20s
`, cmd, den.Dir, den.URL)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestSuperviseDendrite: wellknownd starts the real Dendrite, serves through
// it once ready, survives a kill -9 (documents never fail, client requests
// get 503 JSON at once while it restarts), and stops it on SIGTERM.
func TestSuperviseDendrite(t *testing.T) {
	den := dendritetest.Setup(t, dendritetest.Options{ServerName: "example.com"})
	// A DNS token in the edge's environment, as EnvironmentFile= puts it
	// there, is the edge's alone.
	t.Setenv("DO_AUTH_TOKEN", "dop_v1_edge_only")
	d := startDaemon(t, supervisedConfig(den), "http", "admin")
	st := d.waitStatus("dendrite ready", 90*time.Second, func(s statusDoc) bool { return s.UpstreamReady })
	firstPID := st.Supervised[0].PID
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", firstPID))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(environ, []byte("DO_AUTH_TOKEN=")) {
		t.Fatal("Dendrite inherited the edge's DO_AUTH_TOKEN")
	}
	if !bytes.Contains(environ, []byte("PATH=")) {
		t.Fatal("Dendrite inherited no environment at all")
	}

	versions := func() (int, string, string, time.Duration) {
		start := time.Now()
		c := &http.Client{Timeout: 20 * time.Second}
		req, _ := http.NewRequest("GET", "http://"+d.addrs["http"]+"/_matrix/client/versions", nil)
		req.Host = "matrix.example.com"
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error(), "", time.Since(start)
		}
		b := readBody(t, resp)
		return resp.StatusCode, b, resp.Header.Get("Retry-After"), time.Since(start)
	}
	if code, body, _, _ := versions(); code != 200 || !strings.Contains(body, `"versions"`) {
		t.Fatalf("through the proxy once ready: %d %s", code, body)
	}

	// Load while Dendrite is killed and restarted.
	var (
		stop                       atomic.Bool
		wg                         sync.WaitGroup
		wkFail, ok200, got503, bad atomic.Int64
		slowest                    atomic.Int64
		badMu                      sync.Mutex
		badSeen                    []string
	)
	wg.Go(func() {
		for !stop.Load() {
			resp := d.do("GET", "http", "example.com", "/.well-known/matrix/server")
			if b := readBody(t, resp); resp.StatusCode != 200 || b != wantServer {
				wkFail.Add(1)
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				code, body, retry, took := versions()
				if int64(took) > slowest.Load() {
					slowest.Store(int64(took))
				}
				switch {
				case code == 200:
					ok200.Add(1)
				case code == 503 && strings.Contains(body, `"errcode":"M_UNKNOWN"`) && retry != "":
					got503.Add(1)
					time.Sleep(20 * time.Millisecond)
				default:
					bad.Add(1)
					badMu.Lock()
					badSeen = append(badSeen, fmt.Sprintf("%d %s", code, body))
					badMu.Unlock()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(firstPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	st = d.waitStatus("dendrite restarted and ready", 90*time.Second, func(s statusDoc) bool {
		return s.UpstreamReady && s.Supervised[0].Restarts >= 1
	})
	readyAt := time.Now()
	// Within seconds of readiness, the proxy serves again.
	deadline := readyAt.Add(5 * time.Second)
	for {
		if code, _, _, _ := versions(); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not serve within 5s of Dendrite's readiness")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("restart took %s; client requests: %d ok, %d 503, slowest %s", readyAt.Sub(killedAt).Round(time.Millisecond), ok200.Load(), got503.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
	if wkFail.Load() != 0 {
		t.Errorf("%d well-known requests failed while Dendrite restarted", wkFail.Load())
	}
	if bad.Load() != 0 {
		t.Errorf("%d client requests got neither 200 nor 503 JSON: %v", bad.Load(), badSeen[:min(len(badSeen), 5)])
	}
	if got503.Load() == 0 {
		t.Errorf("no client request saw the 503 while Dendrite was down")
	}
	if time.Duration(slowest.Load()) > 5*time.Second {
		t.Errorf("a client request took %s: requests must not hang on a restarting homeserver", time.Duration(slowest.Load()))
	}
	if last := st.Supervised[0].LastExit; last == nil || last.Signal != "killed" {
		t.Errorf("last exit %+v, want killed", last)
	}
	if alive(firstPID) {
		t.Errorf("the killed Dendrite %d is still there", firstPID)
	}

	// SIGTERM to wellknownd: Dendrite is stopped gracefully before run
	// returns, and nothing it started outlives it.
	secondPID := st.Supervised[0].PID
	if err := d.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if alive(secondPID) {
		t.Fatalf("Dendrite %d outlived wellknownd", secondPID)
	}
	logs := d.stderr.String()
	if !strings.Contains(logs, `msg=stopped process=dendrite exit="exit status`) && !strings.Contains(logs, `msg=stopped process=dendrite exit="killed by SIGTERM"`) {
		t.Fatalf("Dendrite was not stopped by its stop signal:\n%s", logs[max(0, len(logs)-3000):])
	}
	if strings.Contains(logs, "did not stop in time") {
		t.Fatal("Dendrite had to be killed")
	}
	if out, _ := exec.Command("pgrep", "-f", den.ConfigPath).Output(); len(out) > 0 {
		t.Fatalf("processes still running with the test's Dendrite config: %s", out)
	}
}

// TestSuperviseCrashLoop: a command that exits at once is restarted after
// growing delays and reported as crash-looping; the proxy answers 503.
func TestSuperviseCrashLoop(t *testing.T) {
	cfg := edgeConfig("http://127.0.0.1:1") + `supervise:
  - name: broken
    command: ["/bin/false"]
    ready: {tcp: "127.0.0.1:1"}
`
	d := startDaemon(t, cfg, "http", "admin")
	var restartTimes []time.Time
	last := 0
	begin := time.Now()
	for time.Since(begin) < 9*time.Second {
		st := d.status()
		if r := st.Supervised[0].Restarts; r > last {
			restartTimes = append(restartTimes, time.Now())
			last = r
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := d.status()
	if len(restartTimes) < 3 {
		t.Fatalf("%d restarts in 9s: %+v", len(restartTimes), st)
	}
	var gaps []time.Duration
	for i := 1; i < len(restartTimes); i++ {
		gaps = append(gaps, restartTimes[i].Sub(restartTimes[i-1]))
	}
	// 1 s, 2 s, 4 s, … each ±10%: every gap at least 1.5 times the last.
	for i := 1; i < len(gaps); i++ {
		if gaps[i] < gaps[i-1]*3/2 {
			t.Fatalf("restart gaps do not grow: %v", gaps)
		}
	}
	if !st.Supervised[0].CrashLooping || st.Supervised[0].LastExit == nil || st.Supervised[0].LastExit.Code != 1 {
		t.Fatalf("status: %+v", st.Supervised[0])
	}
	if !strings.Contains(d.stderr.String(), "crash loop") {
		t.Fatal("the crash loop was not logged")
	}
	resp := d.do("GET", "http", "matrix.example.com", "/_matrix/client/versions")
	if b := readBody(t, resp); resp.StatusCode != 503 || !strings.Contains(b, "M_UNKNOWN") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("client request while the upstream crash-loops: %d %s", resp.StatusCode, b)
	}
	// Supervision is not on the public listener.
	resp = d.do("GET", "http", "matrix.example.com", "/status")
	if readBody(t, resp); resp.StatusCode == 200 {
		t.Fatal("/status answered on the public listener")
	}
}
