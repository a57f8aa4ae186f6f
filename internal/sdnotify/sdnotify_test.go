package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket where systemd's would be and points
// NOTIFY_SOCKET at name (a path, or "@abstract").
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return conn
}

// next reads one datagram, or fails after a second.
func next(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestStatesOnTheSocket(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify.sock"), "@wellknownd-test-" + strconv.Itoa(os.Getpid())} {
		t.Run(name, func(t *testing.T) {
			conn := listen(t, name)
			n := FromEnv()
			if err := n.Ready("serving example.com"); err != nil {
				t.Fatal(err)
			}
			if got := next(t, conn); got != "READY=1\nSTATUS=serving example.com" {
				t.Fatalf("ready sent %q", got)
			}
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			got := next(t, conn)
			usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
			if v, err := strconv.ParseInt(usec, 10, 64); !ok || err != nil || v <= 0 {
				t.Fatalf("reloading sent %q; systemd needs MONOTONIC_USEC in the same datagram", got)
			}
			n.Stopping()
			if got := next(t, conn); got != "STOPPING=1" {
				t.Fatalf("stopping sent %q", got)
			}
		})
	}
}

func TestWithoutServiceManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := FromEnv().Ready("x"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET a notification must do nothing, got %v", err)
	}
}

func TestUnreachableSocketIsAnError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	if err := FromEnv().Ready("x"); err == nil || !strings.Contains(err.Error(), "sd_notify") {
		t.Fatalf("a missing socket gave %v", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"garbage", "", 0},
		{"-5", "", 0},
		{"2000000", "", time.Second},
		{"2000000", me, time.Second},
		{"2000000", "1", 0}, // meant for another process
	} {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		if got := WatchdogInterval(); got != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: interval %v, want %v", c.usec, c.pid, got, c.want)
		}
	}
}
