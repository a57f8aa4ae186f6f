package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// Systemd is a container whose PID 1 is systemd, under podman with runc:
// a machine to install the unit on as an operator would. It has a network
// namespace of its own (loopback only), so its ports 80 and 443 are its
// own; the tests talk to the daemon from inside it.
type Systemd struct {
	t    testing.TB
	dir  string
	name string
}

// podmanConf is podman's configuration for this machine: runc (crun
// refuses this kernel's hybrid cgroups), cgroupfs, and no ulimits or pids
// limit (setrlimit is refused otherwise). It is passed in CONTAINERS_CONF,
// so the machine's own configuration is never touched.
const podmanConf = `[containers]
default_ulimits = []
pids_limit = 0
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
`

// BootSystemd starts a Debian bookworm container with systemd as PID 1
// and waits until it has booted. It is removed when the test ends.
func BootSystemd(t testing.TB) *Systemd {
	t.Helper()
	need(t, "podman", "runc")
	image := debianSystemd.tarball(t)
	dir, err := os.MkdirTemp("", "wkp-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "containers.conf"), []byte(podmanConf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Systemd{t: t, dir: dir, name: "wellknownd-systemd-test"}
	t.Cleanup(s.remove)
	s.podman("import", image, "localhost/wellknownd-test/systemd")
	s.podman("run", "--pull=never", "-d", "--name", s.name, "--systemd=always", "--privileged", "--network", "none",
		"localhost/wellknownd-test/systemd", "/sbin/init")
	if err := wait.For(60*time.Second, func() error {
		out, err := s.Try("systemctl is-system-running")
		if state := strings.TrimSpace(out); state == "running" || state == "degraded" {
			return nil
		}
		return err
	}); err != nil {
		t.Fatalf("systemd did not boot: %v", err)
	}
	return s
}

func (s *Systemd) command(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append([]string{"--root", filepath.Join(s.dir, "root"), "--runroot", filepath.Join(s.dir, "run"),
		"--storage-driver", "overlay"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(s.dir, "containers.conf"))
	return cmd
}

func (s *Systemd) podman(args ...string) string {
	s.t.Helper()
	out, err := run(s.command(args...))
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *Systemd) remove() {
	run(s.command("rm", "-f", "-t", "5", s.name))
	run(s.command("rmi", "-a", "-f"))
	removeAll(s.dir)
}

// Copy copies a file of this machine into the container.
func (s *Systemd) Copy(src, dst string) {
	s.t.Helper()
	s.podman("cp", src, s.name+":"+dst)
}

// Try runs a bash script as root in the container (with -e and pipefail)
// and returns its output.
func (s *Systemd) Try(script string) (string, error) {
	return run(s.command("exec", s.name, "bash", "-euo", "pipefail", "-c", script))
}

// Sh is Try that fails t (the test or subtest running it), with the
// service's journal.
func (s *Systemd) Sh(t testing.TB, script string) string {
	t.Helper()
	out, err := s.Try(script)
	if err != nil {
		journal, _ := s.Try("journalctl --no-pager -n 60 -u 'wellknownd*'")
		t.Fatalf("%v\njournal:\n%s", err, journal)
	}
	return out
}
