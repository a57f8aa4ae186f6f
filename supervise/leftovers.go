package supervise

import (
	"errors"
	"maps"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// leftoverPoll is how often what an entry left behind is looked at while
// it stops.
const leftoverPoll = 50 * time.Millisecond

// killWait bounds the wait after SIGKILL: a process in uninterruptible
// sleep dies only when its I/O returns. The entry goes on meanwhile, and
// the reaper waits for the process when it exits.
const killWait = 5 * time.Second

// endLeftovers ends what the entry's process left behind once it has
// exited: every process below this one that carries the entry's mark is
// sent the stop signal, SIGKILL after the stop timeout, and reaped once it
// is a child of this process. What stayed in the process group pgid (just
// killed with it) is waited for and reaped too. It runs before a restart
// and when the entry stops, so nothing of one run outlives it.
func (e *entry) endLeftovers(pgid int) {
	r := e.sup.reap
	if r == nil {
		return
	}
	kv := r.marker(e.spec.Name)
	left, err := r.marked(kv, pgid)
	if err != nil {
		e.log.Warn("could not look for what it left behind", "err", err)
		return
	}
	if len(left) == 0 {
		return
	}
	// Not ready while its leftovers stop: the gate answers 503 at once
	// rather than proxying to a process that has exited.
	e.set(Stopping)
	sig := e.spec.StopSignal
	e.log.Info("ending what it left behind", "pids", pidList(left), "signal", sig.String(), "timeout", e.spec.StopTimeout)
	for _, p := range left {
		signalSame(p, sig)
	}
	began := time.Now()
	deadline := began.Add(e.spec.StopTimeout)
	for {
		for pid, p := range left {
			st, ok := current(p)
			switch {
			case !ok:
				delete(left, pid) // exited and reaped
			case st.state == 'Z' && st.ppid == r.self:
				if _, ok := r.wait(pid); ok {
					delete(left, pid)
				}
			case st.state == 'Z' && left[st.ppid].pid == 0:
				// Exited, and its parent is not one being ended:
				// that parent reaps it. (A zombie whose parent is
				// being ended is waited for: it comes here when
				// that parent exits.)
				delete(left, pid)
			}
		}
		// What they start while stopping is ended as well.
		if more, err := r.marked(kv, pgid); err == nil {
			for pid, p := range more {
				if _, ok := left[pid]; !ok {
					left[pid] = p
					signalSame(p, sig)
				}
			}
		}
		if len(left) == 0 {
			e.log.Info("ended what it left behind", "took", time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			if sig == syscall.SIGKILL {
				e.log.Warn("left behind and still there after SIGKILL; the reaper waits for it", "pids", pidList(left))
				return
			}
			e.log.Warn("what it left behind did not stop in time; killing it", "pids", pidList(left), "timeout", e.spec.StopTimeout)
			sig = syscall.SIGKILL
			for _, p := range left {
				signalSame(p, sig)
			}
			deadline = time.Now().Add(killWait)
		}
		time.Sleep(leftoverPoll)
	}
}

// marked is every process below this one that is in the process group
// pgid, or alive and with kv in its environment (a zombie's is gone).
func (r *reaper) marked(kv string, pgid int) (map[int]procStat, error) {
	procs, err := readProcs()
	if err != nil {
		return nil, err
	}
	out := map[int]procStat{}
	for _, p := range descendants(procs, r.self) {
		if p.pgrp == pgid || p.state != 'Z' && hasEnv(p.pid, kv) {
			out[p.pid] = p
		}
	}
	return out, nil
}

// current is p's stat now, if p is still the process that was seen (its
// pid not reused by another).
func current(p procStat) (procStat, bool) {
	st, err := readStat(p.pid)
	return st, err == nil && st.start == p.start
}

// signalSame sends sig to p, and never to a process that took p's pid
// after p was reaped: the pidfd is opened first and names one process,
// which is then checked to be p.
func signalSame(p procStat, sig syscall.Signal) {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.3: the check and the kill are as close as
		// they can be.
		if _, ok := current(p); ok {
			unix.Kill(p.pid, sig)
		}
		return
	}
	if err != nil {
		return // gone
	}
	defer unix.Close(fd)
	if _, ok := current(p); ok {
		unix.PidfdSendSignal(fd, sig, nil, 0)
	}
}

func pidList(m map[int]procStat) []int {
	return slices.Sorted(maps.Keys(m))
}
