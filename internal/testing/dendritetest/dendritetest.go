// Package dendritetest runs the real Dendrite v0.13.8 for integration tests:
// it builds the binary from the tools/dendrite module (once per machine),
// writes a SQLite configuration and a signing key, starts the server on a
// loopback port and registers users through shared-secret registration.
//
// Nothing here is skipped: a Dendrite that cannot be built or started fails
// the test that asked for it.
package dendritetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// Version is the Dendrite release the tests run.
const Version = "v0.13.8"

// root is the module root, found from this file's location.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// BinDir is where the Dendrite binaries are installed.
func BinDir() string { return filepath.Join(root(), ".cache", "bin") }

var buildOnce sync.Once
var buildErr error

// Binaries returns the directory holding dendrite, create-account,
// generate-config and generate-keys, building them first if they are missing. A file lock keeps
// test binaries of several packages from building at the same time.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildErr = build() })
	if buildErr != nil {
		t.Fatalf("building Dendrite %s: %v", Version, buildErr)
	}
	return BinDir()
}

func build() error {
	dir := BinDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".build.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	// The stamp names the tools module's go.mod, so that a tool added
	// there (or a version changed) is built on the next run.
	mod, err := os.ReadFile(filepath.Join(root(), "tools", "dendrite", "go.mod"))
	if err != nil {
		return err
	}
	stamp := filepath.Join(dir, fmt.Sprintf(".dendrite-%s-%x", Version, sha256.Sum256(mod)))
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	cmd := exec.Command("go", "install", "tool")
	cmd.Dir = filepath.Join(root(), "tools", "dendrite")
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go install tool in tools/dendrite: %w\n%s", err, out)
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// SourceFile returns a file of Dendrite's release source, as the module
// proxy serves it (e.g. build/docker/docker-compose.yml).
func SourceFile(t testing.TB, path string) []byte {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/matrix-org/dendrite@"+Version)
	cmd.Dir = filepath.Join(root(), "tools", "dendrite")
	out, err := cmd.Output()
	var mod struct{ Dir string }
	if err != nil || json.Unmarshal(out, &mod) != nil || mod.Dir == "" {
		t.Fatalf("go mod download dendrite@%s: %v\n%s", Version, err, out)
	}
	b, err := os.ReadFile(filepath.Join(mod.Dir, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Options configure a Dendrite.
type Options struct {
	// ServerName is global.server_name; default "localhost".
	ServerName string
	// MaxFileSize is media_api.max_file_size_bytes; default 10 MiB.
	MaxFileSize int64
	// Addr is the HTTP listen address; default a free loopback port.
	Addr string
	// Database is a PostgreSQL connection string; default SQLite files.
	Database string
}

// Dendrite is a running Dendrite.
type Dendrite struct {
	// URL is its client and federation HTTP listener, http://127.0.0.1:PORT.
	URL string
	// Addr is host:port of URL.
	Addr string
	// Dir holds its config, key, databases and log.
	Dir string
	// ConfigPath is its dendrite.yaml; Secret its registration shared secret.
	ConfigPath, Secret string
	// Cmd is the running process.
	Cmd *exec.Cmd
	log *os.File
}

// Setup writes a complete Dendrite deployment into a new directory: a
// signing key and a SQLite dendrite.yaml. It does not start anything.
func Setup(t testing.TB, o Options) *Dendrite {
	t.Helper()
	bin := Binaries(t)
	if o.ServerName == "" {
		o.ServerName = "localhost"
	}
	if o.MaxFileSize == 0 {
		o.MaxFileSize = 10 << 20
	}
	if o.Addr == "" {
		o.Addr = freeport.Addr(t)
	}
	dir := t.TempDir()
	d := &Dendrite{Dir: dir, Addr: o.Addr, URL: "http://" + o.Addr, ConfigPath: filepath.Join(dir, "dendrite.yaml"), Secret: "test-secret-" + filepath.Base(dir)}
	run := func(name string, args ...string) []byte {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
		}
		return out
	}
	run("generate-keys", "-private-key", filepath.Join(dir, "matrix_key.pem"))
	args := []string{"-dir", dir, "-server", o.ServerName}
	if o.Database != "" {
		args = append(args, "-db", o.Database)
	}
	raw := run("generate-config", args...)
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("parsing generated dendrite.yaml: %v", err)
	}
	set := func(path string, v any) {
		keys := strings.Split(path, ".")
		m := cfg
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				t.Fatalf("generated dendrite.yaml has no %s", path)
			}
			m = next
		}
		m[keys[len(keys)-1]] = v
	}
	set("global.private_key", filepath.Join(dir, "matrix_key.pem"))
	set("client_api.registration_shared_secret", d.Secret)
	// Tests log in and send in quick succession, as no person would.
	set("client_api.rate_limiting.enabled", false)
	set("media_api.max_file_size_bytes", o.MaxFileSize)
	// No network here: never ask matrix.org for keys.
	set("federation_api.key_perspectives", []any{})
	set("logging", []any{map[string]any{"type": "file", "level": "info", "params": map[string]any{"path": filepath.Join(dir, "log")}}})
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.ConfigPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// Command is the command line that runs this Dendrite.
func (d *Dendrite) Command() []string {
	return []string{filepath.Join(BinDir(), "dendrite"), "-config", d.ConfigPath, "-http-bind-address", d.Addr}
}

// Start runs Setup, starts Dendrite and waits until it is up; it is
// stopped when the test ends.
func Start(t testing.TB, o Options) *Dendrite {
	t.Helper()
	d := Setup(t, o)
	args := d.Command()
	logf, err := os.Create(filepath.Join(d.Dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.log = logf
	d.Cmd = exec.Command(args[0], args[1:]...)
	d.Cmd.Dir = d.Dir
	d.Cmd.Stdout, d.Cmd.Stderr = logf, logf
	d.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.Cmd.Start(); err != nil {
		t.Fatalf("starting dendrite: %v", err)
	}
	t.Cleanup(d.stop)
	if err := WaitUp(d.URL, 90*time.Second); err != nil {
		t.Fatalf("dendrite did not come up: %v\n%s", err, d.LogTail())
	}
	return d
}

func (d *Dendrite) stop() {
	if d.Cmd.Process == nil {
		return
	}
	syscall.Kill(-d.Cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-d.Cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	d.log.Close()
}

// LogTail is the end of Dendrite's output, for failure messages.
func (d *Dendrite) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "stdout.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// WaitUp polls /_dendrite/monitor/up until it answers 200.
func WaitUp(baseURL string, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	return wait.For(timeout, func() error {
		resp, err := c.Get(baseURL + "/_dendrite/monitor/up")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// PostgresBin is the directory of Debian's PostgreSQL server binaries
// (/usr/lib/postgresql/N/bin). ./test installs the package; without it the
// test fails.
func PostgresBin(t testing.TB) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(matches) == 0 {
		t.Fatal("PostgreSQL is not installed (Debian package postgresql); ./test installs it")
	}
	return filepath.Dir(matches[len(matches)-1])
}
