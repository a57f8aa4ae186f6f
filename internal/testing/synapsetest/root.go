package synapsetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// Suite is the Debian suite the root is built from: Synapse is in neither
// bookworm nor its backports, and sid's package (1.160) serves MSC4186.
const Suite = "sid"

// moduleRoot is the module's root, found from this file's location.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// CacheDir holds the root (root/), its build lock and, while one runs, a
// build in progress (root.tmp-*).
func CacheDir() string { return filepath.Join(moduleRoot(), ".cache", "synapse-sid") }

var (
	rootOnce sync.Once
	rootErr  error
)

// Root returns the directory of a Debian sid tree with matrix-synapse
// installed and a template under /template (a generated homeserver.yaml,
// a signing key, and a SQLite database whose schema and background updates
// are done), building it first if it is missing. A file lock keeps test
// binaries of several packages from building at the same time; the build
// happens in a temporary directory renamed into place when complete, so an
// interrupted build is never mistaken for a finished one. A failed build
// fails the test: nothing here is skipped.
func Root(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		began := time.Now()
		var built bool
		if built, rootErr = ensureRoot(); built {
			t.Logf("built the Synapse root (Debian %s) in %v", Suite, time.Since(began).Round(time.Second))
		}
	})
	if rootErr != nil {
		t.Fatalf("building the Synapse root (Debian %s): %v", Suite, rootErr)
	}
	return filepath.Join(CacheDir(), "root")
}

// ensureRoot builds the root unless it is there; built says it did.
func ensureRoot() (built bool, err error) {
	if os.Geteuid() != 0 {
		return false, fmt.Errorf("mmdebstrap and chroot need root; running as uid %d", os.Geteuid())
	}
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return false, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return false, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	final := filepath.Join(dir, "root")
	if _, err := os.Stat(filepath.Join(final, "template", "homeserver.db")); err == nil {
		return false, nil
	}
	// Whatever an interrupted build left is garbage: only a holder of the
	// lock builds, and we hold it.
	stale, _ := filepath.Glob(filepath.Join(dir, "root.tmp-*"))
	for _, s := range stale {
		if err := os.RemoveAll(s); err != nil {
			return false, fmt.Errorf("removing an interrupted build: %w", err)
		}
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return false, fmt.Errorf("mmdebstrap not found: install Debian's mmdebstrap package (./test does): %w", err)
	}
	tmp, err := os.MkdirTemp(dir, "root.tmp-")
	if err != nil {
		return false, err
	}
	// sid's Release file on the mirror is often past its Valid-Until;
	// package signatures are still checked.
	cmd := exec.Command("mmdebstrap", "--variant=apt", "--include=matrix-synapse,ca-certificates",
		"--aptopt=Acquire::Check-Valid-Until \"false\"", Suite, tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("mmdebstrap %s: %w\n%s", Suite, err, tail(out, 4000))
	}
	if err := makeTemplate(tmp); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("preparing the template homeserver: %w", err)
	}
	// A root from an earlier layout (no template) is replaced whole.
	if err := os.RemoveAll(final); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return false, err
	}
	return true, nil
}

// makeTemplate generates Synapse's configuration and signing key in
// root/template, then runs Synapse once on it until the database schema
// is created and every background update is done. A Start copies that
// database: schema creation and the ~50 background updates (a second's
// sleep between batches by default) are then never paid again, and
// sliding sync answers from its own tables from the first request (Synapse
// falls back to a slower path until its sliding-sync background jobs end).
func makeTemplate(root string) error {
	const dir = "/template"
	if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
		return err
	}
	gen := chrootCommand(root, "python3", "-m", "synapse.app.homeserver", "--server-name", "localhost",
		"--config-path", dir+"/homeserver.yaml", "--generate-config", "--report-stats=no", "--data-directory", dir)
	if out, err := gen.CombinedOutput(); err != nil {
		return fmt.Errorf("generating the configuration: %w\n%s", err, tail(out, 4000))
	}
	generated, err := os.ReadFile(filepath.Join(root, dir, "homeserver.yaml"))
	if err != nil {
		return err
	}
	// Nothing connects to this run: port 0 lets the kernel pick.
	cfg, err := editConfig(generated, runConfig{
		ServerName: "localhost", Dir: dir, Port: 0, Secret: "template",
		// Run every background update back to back.
		Extra: map[string]any{"background_updates": map[string]any{"sleep_enabled": false}},
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, dir, "run.yaml"), cfg, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, dir, "log.yaml"), []byte(logConfig), 0o644); err != nil {
		return err
	}
	var log bytes.Buffer
	var mu sync.Mutex
	run := chrootCommand(root, "python3", "-m", "synapse.app.homeserver", "-c", dir+"/run.yaml")
	run.Stdout, run.Stderr = lockedWriter{&mu, &log}, lockedWriter{&mu, &log}
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := run.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	err = wait.For(5*time.Minute, func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("synapse exited: %v", err)
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(log.String(), "No more background updates to do") {
			return nil
		}
		return fmt.Errorf("background updates still running")
	})
	syscall.Kill(-run.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, tail(log.Bytes(), 4000))
	}
	// SQLite checkpoints its write-ahead log when the last connection
	// closes; a clean stop leaves a database file complete on its own.
	if _, err := os.Stat(filepath.Join(root, dir, "homeserver.db-wal")); err == nil {
		return fmt.Errorf("synapse left a write-ahead log behind: not a clean stop\n%s", tail(log.Bytes(), 4000))
	}
	for _, f := range []string{"run.yaml", "log.yaml", "homeserver.pid"} {
		os.Remove(filepath.Join(root, dir, f))
	}
	os.RemoveAll(filepath.Join(root, dir, "media_store"))
	return nil
}

// chrootCommand runs name inside root with an environment of its own: the
// host's (SSL_CERT_FILE, say) names paths the root does not have.
func chrootCommand(root, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(context.Background(), "chroot", append([]string{root, name}, args...)...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C.UTF-8",
		"HOME=/tmp",
		// The root is shared by every test process; its .pyc files come
		// with the packages.
		"PYTHONDONTWRITEBYTECODE=1",
	}
	return cmd
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
