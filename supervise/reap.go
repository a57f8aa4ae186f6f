package supervise

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// What a supervised process leaves behind (a daemon that called setsid, a
// double fork) is no longer its child: once its parent exits it is
// re-parented to the nearest ancestor that is a child subreaper, else to
// init. The daemon marks itself a subreaper (cmd/wellknownd/serve.go), so
// such orphans come to it; the reaper waits for them when they exit, and
// an entry ends the ones it left when it restarts or stops (leftovers.go).
//
// Two rules keep it from stealing what is not its own:
//
//   - It never waits for "any child" (wait4(-1)): os/exec waits for its own
//     pid, and would get ECHILD. It waits for one pid at a time, and only
//     for a zombie child that no pidfd in this process names: os/exec
//     holds a pidfd for each child it starts, from the fork until its Wait,
//     so a child without one is an orphan that was re-parented here.
//   - It kills only what carries its mark: every command runs with
//     WELLKNOWND_SUPERVISED=NAME/ID in its environment, ID this
//     supervisor's, and everything it starts inherits it — through fork,
//     exec, setsid, a double fork, a change of user. Process groups and
//     sessions do not say as much (setsid leaves both), and cgroups are not
//     writable everywhere the daemon runs (a container, a unit without
//     Delegate=). A process that cleared its environment, or whose
//     environment cannot be read, is not known to be ours: it is reaped
//     when it exits, never killed.

// markerVar is the environment variable that marks a supervised process and
// everything it starts.
const markerVar = "WELLKNOWND_SUPERVISED"

// reapInterval is how often the reaper looks for exited orphans without
// being woken by SIGCHLD: signals coalesce, and one may be missed while a
// scan runs.
const reapInterval = 5 * time.Second

// reaper waits for exited orphans and finds what an entry left behind.
type reaper struct {
	log *slog.Logger
	// self is this process's pid: the parent of every orphan it adopts.
	self int
	// id tells this supervisor's processes from another's (a test runs
	// several in one process; a supervised wellknownd runs its own).
	id string
	// heldByExec is set once a child started by os/exec is seen to be
	// held by a pidfd. Until then (a kernel before 5.4, or pidfds
	// forbidden by seccomp) a child without a pidfd may still be an
	// exec.Cmd's, and no unknown zombie is reaped.
	heldByExec atomic.Bool
}

func newReaper(log *slog.Logger) *reaper {
	b := make([]byte, 6)
	rand.Read(b)
	return &reaper{log: log, self: os.Getpid(), id: hex.EncodeToString(b)}
}

// marker is the NAME=value that marks the processes of entry name.
func (r *reaper) marker(name string) string {
	return markerVar + "=" + name + "/" + r.id
}

// started notes whether os/exec holds a pidfd for a process it started.
func (r *reaper) started(p *os.Process) {
	if !r.heldByExec.Load() && p.WithHandle(func(uintptr) {}) == nil {
		r.heldByExec.Store(true)
	}
}

// run reaps exited orphans whenever a child exits (SIGCHLD: an adopted
// orphan's exit signals its new parent) and every reapInterval, until
// ctx ends.
func (r *reaper) run(ctx context.Context) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	defer signal.Stop(sigc)
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	for {
		r.reapOrphans()
		select {
		case <-ctx.Done():
			r.reapOrphans()
			return
		case <-sigc:
		case <-t.C:
		}
	}
}

// reapOrphans waits for every exited child of this process that os/exec
// does not hold.
func (r *reaper) reapOrphans() {
	if !r.heldByExec.Load() {
		return
	}
	procs, err := readProcs()
	if err != nil {
		r.log.Warn("reaper", "err", err)
		return
	}
	var zombies []procStat
	for _, p := range procs {
		if p.ppid == r.self && p.state == 'Z' {
			zombies = append(zombies, p)
		}
	}
	if len(zombies) == 0 {
		return
	}
	// Read after the zombies were seen: a child started since has its
	// pidfd from the fork on, and one started before is still held until
	// its own Wait has reaped it (and then wait4 below finds no child).
	held, err := heldPids()
	if err != nil {
		r.log.Warn("reaper", "err", err)
		return
	}
	for _, z := range zombies {
		if held[z.pid] {
			continue
		}
		if ws, ok := r.wait(z.pid); ok {
			r.log.Debug("reaped an orphan", "pid", z.pid, "exit", exitOf(ws).String())
		}
	}
}

// wait reaps pid if it is an exited child, without blocking.
func (r *reaper) wait(pid int) (unix.WaitStatus, bool) {
	var ws unix.WaitStatus
	for {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return ws, err == nil && got == pid
	}
}

func exitOf(ws unix.WaitStatus) Exit {
	if ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal().String()}
	}
	return Exit{Code: ws.ExitStatus()}
}
