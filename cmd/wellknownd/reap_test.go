package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// ppidOf is pid's parent, or an error once /proc no longer shows pid.
func ppidOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which may hold spaces: state, ppid.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return strconv.Atoi(f[1])
}

// TestServeAdoptsAndEndsOrphans: serve makes the daemon a child subreaper,
// so a daemon a supervised command starts (double fork into a session of
// its own) is re-parented to wellknownd, not init, while the command still
// runs; stopping wellknownd ends it. Before, it went to init at once and
// outlived wellknownd.
func TestServeAdoptsAndEndsOrphans(t *testing.T) {
	// The flag is the process's: clear it, so that only serve sets it
	// (the daemon runs in this test process).
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "orphan")
	script := `(setsid sh -c 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 1000' "` + pidFile + `" &); exec sleep 1000`
	cmd, _ := json.Marshal([]string{"/bin/sh", "-c", script})
	d := startDaemon(t, edgeConfig("http://127.0.0.1:1")+fmt.Sprintf(`supervise:
  - name: leaver
    command: %s
    stop_timeout: 5s
`, cmd), "http", "admin")
	var orphan int
	wait.Until(t, "the orphan's pid", 15*time.Second, func() error {
		b, err := os.ReadFile(pidFile)
		if err == nil {
			orphan, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err
	})
	t.Cleanup(func() { unix.Kill(orphan, unix.SIGKILL) })
	wait.Until(t, "the orphan to be adopted by wellknownd", 10*time.Second, func() error {
		if ppid, err := ppidOf(orphan); err != nil || ppid != os.Getpid() {
			return fmt.Errorf("parent %d (wellknownd is %d), %v", ppid, os.Getpid(), err)
		}
		return nil
	})
	if err := d.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := ppidOf(orphan); err == nil {
		t.Fatalf("the orphan %d outlived wellknownd (or is a zombie)\n%s", orphan, d.stderr)
	}
	if log := d.stderr.String(); !strings.Contains(log, `msg="ending what it left behind" process=leaver pids=[`+strconv.Itoa(orphan)+`]`) {
		t.Fatalf("the log does not say what was ended:\n%s", log)
	}
}
