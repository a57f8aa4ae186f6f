package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// signals are the stop signals a supervise entry may name.
var signals = map[string]syscall.Signal{
	"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
	"SIGHUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
}

func (v *validator) validateSupervise() {
	names := map[string]int{}
	for i, e := range v.cfg.Supervise {
		at := "supervise[" + strconv.Itoa(i) + "]"
		if e.Name == "" {
			v.errf(at+".name", "is required")
		} else if j, dup := names[e.Name]; dup {
			v.errf(at+".name", "%q is also supervise[%d]'s name", e.Name, j)
		}
		names[e.Name] = i
		if len(e.Command) > 0 {
			if err := checkExecutable(e.Command[0]); err != nil {
				v.errf(at+".command[0]", "%s", err)
			}
		} else if e.Ready.HTTP == "" && e.Ready.TCP == "" {
			v.errf(at, "has neither a command to run nor a ready probe to watch")
		}
		if e.Dir != "" {
			if st, err := os.Stat(e.Dir); err != nil || !st.IsDir() {
				v.errf(at+".dir", "%q is not a directory", e.Dir)
			}
		}
		switch {
		case e.Ready.HTTP != "" && e.Ready.TCP != "":
			v.errf(at+".ready", "has both http and tcp; choose one")
		case e.Ready.HTTP != "":
			v.cfg.Supervise[i].Ready.URL = v.httpURL(at+".ready.http", e.Ready.HTTP)
		case e.Ready.TCP != "":
			if _, _, err := net.SplitHostPort(e.Ready.TCP); err != nil {
				v.errf(at+".ready.tcp", "%q is not host:port", e.Ready.TCP)
			}
		}
		if sig, ok := signals[e.StopSignal]; ok {
			v.cfg.Supervise[i].Signal = sig
		} else {
			v.errf(at+".stop_signal", "%q is not a stop signal; valid: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2", e.StopSignal)
		}
		if e.StopTimeout <= 0 {
			v.errf(at+".stop_timeout", "must be more than 0, e.g. 30s")
		}
		v.resolveCredential(at, &v.cfg.Supervise[i])
	}
	for i, e := range v.cfg.Supervise {
		for j, a := range e.After {
			if _, ok := names[a]; !ok {
				v.errf("supervise["+strconv.Itoa(i)+"].after["+strconv.Itoa(j)+"]", "%q names no supervise entry", a)
			} else if a == e.Name {
				v.errf("supervise["+strconv.Itoa(i)+"].after["+strconv.Itoa(j)+"]", "%q cannot come after itself", a)
			}
		}
	}
	if cycle := afterCycle(v.cfg.Supervise); cycle != "" {
		v.errf("supervise", "after has a cycle: %s", cycle)
	}
}

// checkExecutable makes sure a command can be run: a path that exists and
// is executable, or a name found on $PATH.
func checkExecutable(name string) error {
	if !strings.Contains(name, "/") {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%q is not found on $PATH; give its absolute path", name)
		}
		return nil
	}
	st, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", name)
	case err != nil:
		return fmt.Errorf("%s: %v", name, unwrapPathError(err))
	case st.IsDir():
		return fmt.Errorf("%s is a directory, not a program", name)
	case st.Mode()&0o111 == 0:
		return fmt.Errorf("%s is not executable (chmod +x)", name)
	}
	return nil
}

// afterCycle returns a cycle among after lists, as "a -> b -> a", or "".
func afterCycle(entries []Supervised) string {
	after := map[string][]string{}
	for _, e := range entries {
		after[e.Name] = e.After
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) string
	visit = func(n string) string {
		switch state[n] {
		case visiting:
			i := slices.Index(path, n)
			return strings.Join(append(slices.Clone(path[i:]), n), " -> ")
		case done:
			return ""
		}
		state[n] = visiting
		path = append(path, n)
		for _, a := range after[n] {
			if a == n {
				continue
			}
			if c := visit(a); c != "" {
				return c
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return ""
	}
	for _, e := range entries {
		if c := visit(e.Name); c != "" {
			return c
		}
	}
	return ""
}

// resolveCredential looks up a supervise entry's user and group, and
// stores the ids it is started with.
func (v *validator) resolveCredential(at string, e *Supervised) {
	if e.User == "" && e.Group == "" {
		return
	}
	if len(e.Command) == 0 {
		v.errf(at+".user", "is only for an entry with a command")
		return
	}
	if e.User == "" {
		v.errf(at+".group", "needs user as well")
		return
	}
	u, err := user.Lookup(e.User)
	if err != nil {
		if u, err = user.LookupId(e.User); err != nil {
			v.errf(at+".user", "%q is no user of this machine", e.User)
			return
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if e.Group != "" {
		g, err := user.LookupGroup(e.Group)
		if err != nil {
			if g, err = user.LookupGroupId(e.Group); err != nil {
				v.errf(at+".group", "%q is no group of this machine", e.Group)
				return
			}
		}
		gid, _ = strconv.ParseUint(g.Gid, 10, 32)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	if os.Geteuid() != 0 && uint32(os.Geteuid()) != cred.Uid {
		v.warnf(at+".user", "wellknownd runs as uid %d here; only root can start %s as %s, so it will fail to start", os.Geteuid(), e.Name, e.User)
	}
	e.Credential = cred
}
