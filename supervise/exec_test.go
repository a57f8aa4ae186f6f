package supervise

import (
	"context"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/syncbuf"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// runOnce runs spec once (no restart within the test) and returns when it
// has exited.
func runOnce(t *testing.T, log *slog.Logger, spec Spec) *Supervisor {
	t.Helper()
	s := New([]Spec{spec}, log, Policy{InitialBackoff: time.Hour, MaxBackoff: time.Hour, StableAfter: time.Hour, CrashLoopAfter: 3,
		ProbeInterval: time.Second, StartProbeInterval: 50 * time.Millisecond, ProbeTimeout: time.Second, UnhealthyAfter: 3})
	s.Start(context.Background())
	t.Cleanup(s.Stop)
	wait.True(t, "the child to finish", 10*time.Second, func() bool { return s.Status()[0].LastExit != nil })
	return s
}

// TestLongLinesAndBinaryDoNotBlock: a child that writes a 1 MB line and
// binary garbage is read to the end (it exits; nothing blocks on a full
// pipe), and its output reaches the log in pieces tagged with its name.
func TestLongLinesAndBinaryDoNotBlock(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := runOnce(t, log, Spec{
		Name:        "chatty",
		Command:     []string{"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; echo; head -c 4096 /dev/urandom; echo; echo done >&2; exit 3"},
		StopSignal:  syscall.SIGTERM,
		StopTimeout: time.Second,
	})
	if st := s.Status()[0]; st.LastExit.Code != 3 {
		t.Fatalf("exit %+v", st.LastExit)
	}
	out := logs.String()
	if n := strings.Count(out, "process=chatty stream=stdout"); n < 1000000/maxLine {
		t.Fatalf("a 1 MB line gave %d log records; want it in %d-byte pieces", n, maxLine)
	}
	if !strings.Contains(out, `msg=done process=chatty stream=stderr`) {
		t.Fatalf("stderr line missing:\n%s", out[len(out)-500:])
	}
}

// TestWithheldEnvironment: a variable named in Withhold does not reach the
// child from wellknownd's environment; the others do, and Env may still
// set a withheld one.
func TestWithheldEnvironment(t *testing.T) {
	t.Setenv("DO_AUTH_TOKEN", "dop_v1_secret")
	t.Setenv("HETZNER_API_TOKEN", "hetzner_secret")
	t.Setenv("KEEP_ME", "kept")
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	runOnce(t, log, Spec{
		Name:        "env",
		Command:     []string{"sh", "-c", `echo "do=${DO_AUTH_TOKEN:-unset} hetzner=${HETZNER_API_TOKEN:-unset} keep=$KEEP_ME"; exit 3`},
		Env:         map[string]string{"HETZNER_API_TOKEN": "given"},
		Withhold:    []string{"DO_AUTH_TOKEN", "HETZNER_API_TOKEN"},
		StopSignal:  syscall.SIGTERM,
		StopTimeout: time.Second,
	})
	if out := logs.String(); !strings.Contains(out, `msg="do=unset hetzner=given keep=kept"`) {
		t.Fatalf("the child's environment:\n%s", out)
	}
}
