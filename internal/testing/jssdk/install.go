// Package jssdk runs real JavaScript Matrix clients for integration tests:
// matrix-js-sdk 37.5.0 (the newest that accepts Debian's Node 20; its
// SlidingSync speaks MSC4186 at org.matrix.simplified_msc3575) driven by a
// Node ES module script whose stdout is JSON lines, one object per line,
// which a Go test reads as they come (Start, Proc.Await) or all at the end
// (Run).
//
// The SDK is installed from the npm registry once per machine, pinned by
// this directory's package-lock.json, under the repository's .cache/jssdk.
// A missing node or npm, or a failed install, fails the test: nothing here
// is skipped.
package jssdk

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// SDKVersion is the matrix-js-sdk release the scripts run with.
const SDKVersion = "37.5.0"

// here is this package's directory.
func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// CacheDir holds the installs (one directory per package-lock.json), the
// install lock and, while one runs, an install in progress.
func CacheDir() string { return filepath.Join(here(), "..", "..", "..", ".cache", "jssdk") }

var (
	installOnce sync.Once
	installDir  string
	installErr  error
)

// Install returns the directory whose node_modules holds matrix-js-sdk,
// installing it first if it is missing. Scripts run from a directory below
// it, so that their imports resolve there.
func Install(t testing.TB) string {
	t.Helper()
	installOnce.Do(func() { installDir, installErr = install() })
	if installErr != nil {
		t.Fatalf("installing matrix-js-sdk %s: %v", SDKVersion, installErr)
	}
	return installDir
}

// Node is the node binary; it fails t when there is none, or one older
// than the SDK accepts.
func Node(t testing.TB) string {
	t.Helper()
	node, err := nodeBinary()
	if err != nil {
		t.Fatal(err)
	}
	return node
}

func nodeBinary() (string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("node not found: install Debian's nodejs package (./test does): %w", err)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("node --version: %w", err)
	}
	v := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if major < 20 {
		return "", fmt.Errorf("node %s is older than matrix-js-sdk %s accepts (20)", v, SDKVersion)
	}
	return node, nil
}

func install() (string, error) {
	if _, err := nodeBinary(); err != nil {
		return "", err
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm not found: install Debian's npm package (./test does): %w", err)
	}
	pkg, err := os.ReadFile(filepath.Join(here(), "package.json"))
	if err != nil {
		return "", err
	}
	lock, err := os.ReadFile(filepath.Join(here(), "package-lock.json"))
	if err != nil {
		return "", err
	}
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// The install is named after what it installs: a changed lock file
	// installs afresh beside the old one.
	sum := sha256.Sum256(append(pkg, lock...))
	final := filepath.Join(dir, fmt.Sprintf("sdk-%s-%x", SDKVersion, sum[:8]))
	if ok, _ := installed(final); ok {
		return final, nil
	}
	lk, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lk.Close()
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lk.Fd()), syscall.LOCK_UN)
	if ok, _ := installed(final); ok {
		return final, nil
	}
	// Whatever an interrupted install left is garbage: only a holder of the
	// lock installs, and we hold it.
	stale, _ := filepath.Glob(filepath.Join(dir, "install.tmp-*"))
	for _, s := range stale {
		os.RemoveAll(s)
	}
	tmp, err := os.MkdirTemp(dir, "install.tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return "", err
		}
	}
	// npm ci installs exactly what the lock says, or fails.
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %w\n%s", tmp, err, out)
	}
	if ok, err := installed(tmp); !ok {
		return "", fmt.Errorf("npm ci did not install matrix-js-sdk %s: %v", SDKVersion, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

// installed says whether dir holds matrix-js-sdk at SDKVersion.
func installed(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "matrix-js-sdk", "package.json"))
	if err != nil {
		return false, err
	}
	var p struct{ Version string }
	if err := json.Unmarshal(b, &p); err != nil {
		return false, err
	}
	if p.Version != SDKVersion {
		return false, fmt.Errorf("found version %s", p.Version)
	}
	return true, nil
}
