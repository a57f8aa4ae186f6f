package supervise

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/syncbuf"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// The package's tests run as a child subreaper (TestMain), as the daemon
// does: these are about what a child leaves behind.

// writePid is shell that writes the shell's pid to the file $0 at once
// (a rename: the test never reads half a number).
const writePid = `echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; `

// leaveScript is a supervised command that leaves a process behind on each
// run N, which writes its pid to DIR/orphan.N, and, given SIGTERM, writes
// DIR/orphan.N.term and exits. How it is left depends on MODE: in a
// session of its own (setsid); by a double fork, in the child's process
// group (doublefork); by a double fork into a session of its own, as a
// daemon does (daemon); as a daemon that ignores SIGTERM (stubborn). Then
// the command sleeps.
const leaveScript = `dir=$1 mode=$2
n=$(( $(cat "$dir/runs" 2>/dev/null || echo 0) + 1 ))
echo $n > "$dir/runs"
orphan='trap "echo TERM > $0.term; exit 0" TERM; ` + writePid + `while :; do sleep 1; done'
stubborn='trap "" TERM; ` + writePid + `exec sleep 1000'
case $mode in
setsid) setsid sh -c "$orphan" "$dir/orphan.$n" & ;;
doublefork) (sh -c "$orphan" "$dir/orphan.$n" &) ;;
daemon) (setsid sh -c "$orphan" "$dir/orphan.$n" &) ;;
stubborn) (setsid sh -c "$stubborn" "$dir/orphan.$n" &) ;;
esac
exec sleep 1000
`

// restartPolicy restarts at once and probes often.
var restartPolicy = Policy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, StableAfter: time.Hour,
	CrashLoopAfter: 100, ProbeInterval: time.Second, StartProbeInterval: 50 * time.Millisecond, ProbeTimeout: time.Second, UnhealthyAfter: 3}

// superviseScript supervises "sh SCRIPT ARGS…" as entry name and stops it
// when the test ends; the log is shown if the test fails.
func superviseScript(t *testing.T, name, script string, stopTimeout time.Duration, args ...string) *Supervisor {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".sh")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	s := New([]Spec{{Name: name, Command: append([]string{"/bin/sh", path}, args...), StopSignal: syscall.SIGTERM, StopTimeout: stopTimeout}},
		slog.New(slog.NewTextHandler(&logs, nil)), restartPolicy)
	s.Start(context.Background())
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("supervisor's log:\n%s", logs.String())
		}
	})
	return s
}

// pidIn waits for a pid file and returns the process as it is then.
func pidIn(t *testing.T, path string) procStat {
	t.Helper()
	var pid int
	wait.Until(t, path, 15*time.Second, func() error {
		b, err := os.ReadFile(path)
		if err == nil {
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err
	})
	st, err := readStat(pid)
	if err != nil {
		t.Fatalf("process %d of %s: %v", pid, path, err)
	}
	return st
}

// gone reports whether p has exited and been reaped: /proc no longer shows
// it (a zombie is still shown, in state Z), or shows another process that
// took its pid since.
func gone(p procStat) bool {
	st, err := readStat(p.pid)
	return errors.Is(err, fs.ErrNotExist) || err == nil && st.start != p.start
}

func describe(p procStat) string {
	st, err := readStat(p.pid)
	if err != nil {
		return fmt.Sprintf("pid %d: %v", p.pid, err)
	}
	return fmt.Sprintf("pid %d: state %c, parent %d", p.pid, st.state, st.ppid)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestLeftoversEndedOnRestartAndStop: what a child leaves behind (in a
// session of its own, by a double fork, both as a daemon does) is ended
// before the child is restarted, and reaped (no zombie); what the last run
// left is ended by Stop. What left the process group is sent the stop
// signal first (it saw SIGTERM), and SIGKILL when it ignores that; what
// stayed in the group is killed with the group, as before. Before, what
// left the group outlived every restart and the supervisor.
func TestLeftoversEndedOnRestartAndStop(t *testing.T) {
	for _, mode := range []string{"setsid", "doublefork", "daemon", "stubborn"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			s := superviseScript(t, "leaver", leaveScript, 500*time.Millisecond, dir, mode)
			o1 := pidIn(t, filepath.Join(dir, "orphan.1"))
			t.Cleanup(func() { syscall.Kill(o1.pid, syscall.SIGKILL) })
			if mode != "setsid" {
				// A double fork's orphan is adopted at once, while
				// the child still runs.
				wait.True(t, "the orphan to be adopted by the test process", 10*time.Second, func() bool {
					st, err := readStat(o1.pid)
					return err == nil && st.ppid == os.Getpid()
				})
			}
			child := s.Status()[0].PID
			if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
				t.Fatalf("killing the child %d: %v", child, err)
			}
			o2 := pidIn(t, filepath.Join(dir, "orphan.2"))
			t.Cleanup(func() { syscall.Kill(o2.pid, syscall.SIGKILL) })
			// Ended and reaped before the restart, not merely some
			// time after.
			if !gone(o1) {
				t.Fatalf("run 2 started while run 1's orphan is still there (%s)", describe(o1))
			}
			sawTerm := mode == "setsid" || mode == "daemon"
			if got := exists(filepath.Join(dir, "orphan.1.term")); got != sawTerm {
				t.Fatalf("run 1's orphan saw SIGTERM: %v (mode %s)", got, mode)
			}
			if gone(o2) {
				t.Fatalf("run 2's orphan is gone before the supervisor stops (%s)", describe(o2))
			}
			s.Stop()
			if !gone(o2) {
				t.Fatalf("run 2's orphan outlived the supervisor (%s)", describe(o2))
			}
			if left, err := s.reap.marked(s.reap.marker("leaver"), -1); err != nil || len(left) > 0 {
				t.Fatalf("marked processes left after Stop: %v %v", pidList(left), err)
			}
		})
	}
}

// TestOrphansNotOursReapedNeverKilled: an orphan that exits by itself is
// reaped at once (no zombie under the supervisor), whether it carries the
// mark or not; one that cleared its environment (no mark) is not the
// entry's to end: it survives the restart that ends its marked sibling,
// and is reaped when it exits.
func TestOrphansNotOursReapedNeverKilled(t *testing.T) {
	dir := t.TempDir()
	s := superviseScript(t, "mixed", `dir=$1
if [ ! -e "$dir/spawned" ]; then
  : > "$dir/spawned"
  (setsid sh -c '`+writePid+`exec sleep 1000' "$dir/marked" &)
  (env -u `+markerVar+` setsid sh -c '`+writePid+`exec sleep 1000' "$dir/unmarked" &)
  (sh -c '`+writePid+`exec sleep 3' "$dir/brief" &)
  (env -u `+markerVar+` sh -c '`+writePid+`exec sleep 3' "$dir/brief-unmarked" &)
fi
exec sleep 1000
`, 5*time.Second, dir)
	marked := pidIn(t, filepath.Join(dir, "marked"))
	unmarked := pidIn(t, filepath.Join(dir, "unmarked"))
	t.Cleanup(func() {
		syscall.Kill(marked.pid, syscall.SIGKILL)
		syscall.Kill(unmarked.pid, syscall.SIGKILL)
	})
	brief := []procStat{pidIn(t, filepath.Join(dir, "brief")), pidIn(t, filepath.Join(dir, "brief-unmarked"))}
	for i, name := range []string{"brief", "brief-unmarked"} {
		p := brief[i]
		wait.Until(t, "the orphan "+name+" to exit and be reaped", 15*time.Second, func() error {
			if gone(p) {
				return nil
			}
			return errors.New(describe(p))
		})
	}
	child := s.Status()[0].PID
	syscall.Kill(child, syscall.SIGKILL)
	wait.Until(t, "the marked orphan to be ended", 15*time.Second, func() error {
		if gone(marked) {
			return nil
		}
		return errors.New(describe(marked))
	})
	wait.True(t, "the restart", 15*time.Second, func() bool {
		st := s.Status()[0]
		return st.Restarts >= 1 && st.PID != 0 && st.PID != child
	})
	if st, err := readStat(unmarked.pid); err != nil || st.start != unmarked.start || st.state == 'Z' {
		t.Fatalf("the unmarked orphan was ended: %s", describe(unmarked))
	}
	syscall.Kill(unmarked.pid, syscall.SIGKILL)
	wait.Until(t, "the unmarked orphan, killed, to be reaped", 15*time.Second, func() error {
		if gone(unmarked) {
			return nil
		}
		return errors.New(describe(unmarked))
	})
}

// TestExecWaitKeepsItsStatus: a process the test starts itself with
// os/exec, exited and not yet waited for while the reaper reaps an orphan
// beside it, still gives its own Wait its exit status. A reaper that took
// every exited child it had not started made that Wait fail with ECHILD.
func TestExecWaitKeepsItsStatus(t *testing.T) {
	s := superviseScript(t, "sleeper", "exec sleep 1000\n", 5*time.Second)
	wait.True(t, "the supervised child", 10*time.Second, func() bool { return s.Status()[0].PID != 0 })
	for i := range 3 {
		cmd := exec.Command("sh", "-c", "exit 7")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// It exits, and is a zombie until its Wait (unless something
		// else reaps it, which the Wait below reports).
		wait.Until(t, "the test's process to exit", 10*time.Second, func() error {
			st, err := readStat(cmd.Process.Pid)
			if errors.Is(err, fs.ErrNotExist) || err == nil && st.state == 'Z' {
				return nil
			}
			return fmt.Errorf("%+v %v", st, err)
		})
		// An orphan exits beside it: the reaper, woken by SIGCHLD, finds
		// both exited children of the test process, and reaps the orphan.
		pidFile := filepath.Join(t.TempDir(), "orphan")
		if out, err := exec.Command("sh", "-c", `(sh -c '`+writePid+`exec sleep 0.2' "$1" &)`, "sh", pidFile).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		o := pidIn(t, pidFile)
		wait.Until(t, "the orphan to be reaped", 15*time.Second, func() error {
			if gone(o) {
				return nil
			}
			return errors.New(describe(o))
		})
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fatalf("round %d: the test's own Wait got %v, want exit status 7", i, err)
		}
	}
}
