package supervise

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestMain lets the test binary play a supervisor that can be killed with
// SIGKILL (see TestChildDiesWithSupervisorAsOtherUser). The tests run as a
// child subreaper, as the daemon does (cmd/wellknownd/serve.go): orphans of
// the children come to the test process, and every test, those that start
// an exec.Cmd of their own included, runs with the reaper at work.
func TestMain(m *testing.M) {
	if os.Getenv("SUPERVISE_TEST_HELPER") == "1" {
		helperSupervisor()
		return
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// helperSupervisor supervises "sleep 1000" as the user nobody, prints the
// child's pid, and waits to be killed.
func helperSupervisor() {
	s := New([]Spec{{Name: "sleeper", Command: []string{"sleep", "1000"}, StopSignal: syscall.SIGTERM, StopTimeout: time.Second,
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}}, slog.New(slog.DiscardHandler), DefaultPolicy)
	s.Start(context.Background())
	for {
		if st := s.Status()[0]; st.PID != 0 {
			fmt.Println(st.PID)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {}
}

// TestChildDiesWithSupervisorAsOtherUser: a child started as another user
// still gets the parent-death signal: killing the supervisor with SIGKILL
// (no chance to stop anything) kills the child too. Through setpriv, the
// README's old way, the credential change cleared it and the child lived on.
func TestChildDiesWithSupervisorAsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test starts a process as another user, which needs root (./test and CI run as root)")
	}
	self, _ := os.Executable()
	helper := exec.Command(self, "-test.run=^$")
	helper.Env = append(os.Environ(), "SUPERVISE_TEST_HELPER=1")
	out, _ := helper.StdoutPipe()
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(line))
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", child))
	if !strings.Contains(string(status), "\nUid:\t65534\t65534\t65534\t65534\n") {
		t.Fatalf("the child does not run as nobody:\n%s", status)
	}
	helper.Process.Signal(syscall.SIGKILL)
	helper.Wait()
	// The child is re-parented to this test process (a subreaper, as the
	// daemon is) and no supervisor here reaps it: dead is gone or a
	// zombie, which is then reaped.
	wait.True(t, "the child to die with its supervisor", 5*time.Second, func() bool {
		st, err := readStat(child)
		return err != nil || st.state == 'Z'
	})
	unix.Wait4(child, nil, unix.WNOHANG, nil)
}

// TestExitSeenDespiteEscapedGrandchild: a child that exits while a
// grandchild in a session of its own holds its output pipe is seen to exit
// (and would be restarted), and stopping does not wait for the grandchild.
func TestExitSeenDespiteEscapedGrandchild(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	s := New([]Spec{{
		Name:        "forker",
		Command:     []string{"sh", "-c", "setsid sh -c 'echo $$ > " + pidFile + "; exec sleep 1000' & sleep 0.3; exit 3"},
		StopSignal:  syscall.SIGTERM,
		StopTimeout: time.Second,
	}}, slog.New(slog.NewTextHandler(io.Discard, nil)), Policy{InitialBackoff: time.Hour, MaxBackoff: time.Hour, StableAfter: time.Hour,
		CrashLoopAfter: 3, ProbeInterval: time.Second, StartProbeInterval: 50 * time.Millisecond, ProbeTimeout: time.Second, UnhealthyAfter: 3})
	s.Start(context.Background())
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	wait.True(t, "the exit to be seen", 5*time.Second, func() bool {
		st := s.Status()[0]
		return st.LastExit != nil && st.LastExit.Code == 3 && st.State == Backoff
	})
	start := time.Now()
	s.Stop()
	// Waiting on the grandchild would take its whole sleep (1000 s); a
	// stop takes a fraction of a second, and 10 s leaves a busy machine
	// its margin.
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("stop took %v, waiting on the grandchild", took)
	}
}
