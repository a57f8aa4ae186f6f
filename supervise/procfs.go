package supervise

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStat is what the reaper reads of a process in /proc/PID/stat.
type procStat struct {
	pid, ppid int
	// state is 'Z' for a zombie: exited, waiting to be reaped.
	state byte
	// pgrp is its process group.
	pgrp int
	// start is when the process started, in clock ticks since boot: with
	// the pid, it names one process, so a pid reused in between is not
	// mistaken for the one seen before.
	start uint64
}

// readStat reads one process's stat line.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[2] field 5 (pgrp),
	// f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: pgrp: %w", pid, err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return procStat{pid: pid, ppid: ppid, state: f[0][0], pgrp: pgrp, start: start}, nil
}

// readProcs lists every process /proc shows (threads are not listed).
// A process that exits while the list is read is left out.
func readProcs() ([]procStat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	out := make([]procStat, 0, len(names))
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// descendants are the processes of procs below pid, at any depth.
func descendants(procs []procStat, pid int) []procStat {
	children := map[int][]procStat{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []procStat
	queue := []int{pid}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			if c.pid != pid { // a pid is never its own ancestor; guard the loop anyway
				out = append(out, c)
				queue = append(queue, c.pid)
			}
		}
		queue = queue[1:]
	}
	return out
}

// hasEnv reports whether the environment pid started with holds kv
// ("NAME=value") exactly. A process that cannot be read (another user's,
// when wellknownd is not root; a zombie, whose environment is gone) does
// not.
func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for e := range bytes.SplitSeq(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// heldPids are the processes this process holds a pidfd for. Go's os/exec
// holds one for every child it started, from the fork (clone returns it)
// until Wait has reaped the child: a child named here is someone's
// exec.Cmd, whose Wait must get its exit status.
func heldPids() (map[int]bool, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("listing pidfds: %w", err)
	}
	fds, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("listing pidfds: %w", err)
	}
	held := map[int]bool{}
	for _, fd := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + fd); err != nil || !strings.Contains(link, "pidfd") {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + fd)
		if err != nil {
			continue // closed meanwhile
		}
		for line := range strings.Lines(string(info)) {
			if v, ok := strings.CutPrefix(line, "Pid:"); ok {
				if pid, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && pid > 0 {
					held[pid] = true
				}
			}
		}
	}
	return held, nil
}
