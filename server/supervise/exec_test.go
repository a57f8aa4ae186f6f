package supervise

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/wait"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLongLinesAndBinaryDoNotBlock: a child that writes a 1 MB line and
// binary garbage is read to the end (it exits; nothing blocks on a full
// pipe), and its output reaches the log in pieces tagged with its name.
func TestLongLinesAndBinaryDoNotBlock(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := New([]Spec{{
		Name:        "chatty",
		Command:     []string{"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; echo; head -c 4096 /dev/urandom; echo; echo done >&2; exit 3"},
		StopSignal:  syscall.SIGTERM,
		StopTimeout: time.Second,
	}}, log, Policy{InitialBackoff: time.Hour, MaxBackoff: time.Hour, StableAfter: time.Hour, CrashLoopAfter: 3,
		ProbeInterval: time.Second, StartProbeInterval: 50 * time.Millisecond, ProbeTimeout: time.Second, UnhealthyAfter: 3})
	s.Start(context.Background())
	defer s.Stop()
	wait.True(t, "the child to finish", 10*time.Second, func() bool { return s.Status()[0].LastExit != nil })
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
