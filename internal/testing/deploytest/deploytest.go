// Package deploytest runs wellknownd's deployment artifacts for real, on
// this machine: a Docker Engine and Compose v2 of the test's own, the
// official images' stand-ins built from Debian's packages (no registry is
// reachable here), and systemd as PID 1 in a podman container.
//
// Everything a test starts is stopped by id when it ends, also when it
// fails, and its directories are removed. Nothing is skipped: a missing
// tool fails the test with what to install (./test installs it).
package deploytest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// cacheDir holds what is slow to make and the same on every run: base
// file systems and the Compose plugin. It is .cache/deploy in the
// repository, which git ignores.
func cacheDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(Root(), ".cache", "deploy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// need fails t unless every program is on $PATH.
func need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed; ./test installs it (Debian packages docker.io, podman, runc, mmdebstrap)", p)
		}
	}
}

// locked runs f while holding an exclusive lock on name in the cache, so
// that test binaries of several packages never build the same thing at
// once.
func locked(t testing.TB, name string, f func() error) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(cacheDir(t), name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

// run runs a command and returns its combined output; the error carries
// the output too, so a failure says what the tool said.
func run(cmd *exec.Cmd) (string, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s (after %v): %w\n%s", strings.Join(cmd.Args, " "), time.Since(start).Round(time.Millisecond), err, tail(out.String(), 6000))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Build compiles wellknownd as a static binary (as the container image
// does) into dir, and returns its path.
func Build(t testing.TB, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "wellknownd")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/wellknownd")
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if _, err := run(cmd); err != nil {
		t.Fatal(err)
	}
	return out
}

// removeAll removes a directory a container engine used: whatever it left
// mounted under it is unmounted first (deepest first), or the removal
// would fail on busy mounts.
func removeAll(dir string) {
	exec.Command("sh", "-c", "grep -o ' "+dir+"[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l").Run()
	os.RemoveAll(dir)
}
