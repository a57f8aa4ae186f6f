package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestReloadUnderLoad: under continuous load, a reload changes the client
// document and adds a host with zero failed requests; a broken config
// leaves the running one serving; SIGHUP does the same as POST /reload.
func TestReloadUnderLoad(t *testing.T) {
	adminAddr := freeport.Addr(t)
	cfg := strings.Replace(exampleConfig, "admin: 127.0.0.1:0", "admin: "+adminAddr, 1)
	d := startDaemon(t, cfg, "http", "admin")
	path := d.configPath

	const newClient = `{"m.homeserver":{"base_url":"https://matrix2.example.com"},"m.identity_server":{"base_url":"https://vector.im"},"org.matrix.msc3575.proxy":{"url":"https://sync.example.com"}}`
	var stop atomic.Bool
	var total, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				resp := d.do("GET", "http", "example.com", "/.well-known/matrix/client")
				b := readBody(t, resp)
				total.Add(1)
				if resp.StatusCode != 200 || (b != wantClient && b != newClient) {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, resp.Status+" "+b)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)

	// A new client document and a new host.
	next := strings.NewReplacer(
		"client_base_url: https://matrix.example.com", "client_base_url: https://matrix2.example.com",
		"hosts: [example.com, matrix.example.com]", "hosts: [example.com, matrix.example.com, chat.example.com]",
	).Replace(cfg)
	os.WriteFile(path, []byte(next), 0o600)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"reload", "-config", path}, &out, &errOut); err != nil || out.String() != "reloaded\n" {
		t.Fatalf("wellknownd reload: %v %q %q", err, out.String(), errOut.String())
	}
	if b := readBody(t, d.do("GET", "http", "example.com", "/.well-known/matrix/client")); b != newClient {
		t.Fatalf("after reload: %s", b)
	}
	if resp := d.do("GET", "http", "chat.example.com", "/.well-known/matrix/server"); readBody(t, resp) != wantServer {
		t.Fatalf("added host after reload: %d", resp.StatusCode)
	}

	// A broken file: the reload is refused with file, line and field, and
	// the running configuration keeps serving.
	os.WriteFile(path, []byte(strings.Replace(next, "client_base_url: https://matrix2.example.com", "client_base_url: matrix3.example.com", 1)), 0o600)
	out.Reset()
	errOut.Reset()
	err := run(context.Background(), []string{"reload", "-config", path}, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String(), path+":4: delegation.client_base_url:") || !strings.Contains(errOut.String(), "still serving the previous configuration") {
		t.Fatalf("broken reload: %v %q", err, errOut.String())
	}
	if b := readBody(t, d.do("GET", "http", "example.com", "/.well-known/matrix/client")); b != newClient {
		t.Fatalf("after a broken reload: %s", b)
	}

	// SIGHUP: the same, from the service manager.
	os.WriteFile(path, []byte(cfg), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	wait.True(t, "SIGHUP to reload", 5*time.Second, func() bool {
		return readBody(t, d.do("GET", "http", "example.com", "/.well-known/matrix/client")) == wantClient
	})
	if resp := d.do("GET", "http", "chat.example.com", "/.well-known/matrix/server"); readBody(t, resp) == "" || resp.StatusCode != 421 {
		t.Fatalf("removed host after SIGHUP: %d", resp.StatusCode)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests during three reloads, %d failed", total.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across reloads: %v", failed.Load(), total.Load(), failures[:min(5, len(failures))])
	}
}

// notifySocket listens where systemd would, and points NOTIFY_SOCKET at it.
func notifySocket(t *testing.T) *net.UnixConn {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", sock)
	return conn
}

// TestSystemdNotify: with NOTIFY_SOCKET, systemd hears READY, then
// RELOADING (with MONOTONIC_USEC) and READY around a reload, then STOPPING.
func TestSystemdNotify(t *testing.T) {
	conn := notifySocket(t)
	next := func() string {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for a notification: %v", err)
		}
		return string(buf[:n])
	}
	d := startDaemon(t, exampleConfig, "http", "admin")
	if m := next(); !strings.HasPrefix(m, "READY=1\nSTATUS=serving example.com, matrix.example.com") {
		t.Fatalf("first notification %q", m)
	}
	resp := d.do("POST", "admin", "localhost", "/reload")
	if b := readBody(t, resp); b != "reloaded\n" {
		t.Fatalf("reload: %s", b)
	}
	m := next()
	lines := strings.Split(m, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || len(lines[1]) < len("MONOTONIC_USEC=1") {
		t.Fatalf("reload notification %q", m)
	}
	if m := next(); !strings.HasPrefix(m, "READY=1") {
		t.Fatalf("after reload %q", m)
	}
	d.stop()
	if m := next(); m != "STOPPING=1" {
		t.Fatalf("stop notification %q", m)
	}
}

// TestSystemdWatchdog: with WatchdogSec= set (WATCHDOG_USEC, WATCHDOG_PID),
// the daemon pets the watchdog at half the interval while it serves, and
// stops petting once it stops; a watchdog meant for another process (its
// WATCHDOG_PID) is left alone.
func TestSystemdWatchdog(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		pets bool
	}{
		{"ours", os.Getpid(), true},
		{"another process's", os.Getpid() + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := notifySocket(t)
			t.Setenv("WATCHDOG_USEC", "200000") // pets every 100 ms
			t.Setenv("WATCHDOG_PID", strconv.Itoa(tc.pid))
			// collect reads every datagram until the deadline.
			collect := func(d time.Duration) []string {
				var got []string
				conn.SetReadDeadline(time.Now().Add(d))
				buf := make([]byte, 4096)
				for {
					n, err := conn.Read(buf)
					if err != nil {
						return got
					}
					got = append(got, string(buf[:n]))
				}
			}
			d := startDaemon(t, exampleConfig, "http", "admin")
			got := collect(time.Second)
			if len(got) == 0 || !strings.HasPrefix(got[0], "READY=1") {
				t.Fatalf("notifications %q, want READY=1 first", got)
			}
			pets := 0
			for _, m := range got[1:] {
				if m != "WATCHDOG=1" {
					t.Fatalf("unexpected notification %q among %q", m, got)
				}
				pets++
			}
			// 100 ms apart over about a second: expect several, allow a
			// slow machine to miss some.
			if tc.pets && pets < 3 {
				t.Fatalf("%d watchdog pets in a second at a 100 ms interval: %q", pets, got)
			}
			if !tc.pets && pets != 0 {
				t.Fatalf("petted a watchdog of pid %d: %q", tc.pid, got)
			}
			d.stop()
			after := collect(200 * time.Millisecond)
			stopping := slices.Index(after, "STOPPING=1")
			if stopping < 0 {
				t.Fatalf("no STOPPING=1 after stop: %q", after)
			}
			// The daemon has returned: nothing may follow, least of all a pet.
			if rest := collect(300 * time.Millisecond); len(rest) > 0 {
				t.Fatalf("notifications after the daemon stopped: %q", rest)
			}
		})
	}
}
