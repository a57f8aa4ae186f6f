// Package synapsetest runs the real Synapse for integration tests: a second,
// independent homeserver to compare the edge's answers with (its native
// Simplified Sliding Sync, MSC4186, above all).
//
// Synapse is not in Debian bookworm, and the Python package index is not
// reachable here, so Synapse runs from Debian sid's matrix-synapse package
// in a chroot built once per machine with mmdebstrap (Root). Each Start
// gets its own directory inside that root, a copy of a prepared database,
// and a loopback port.
//
// Nothing here is skipped: a root that cannot be built or a Synapse that
// does not start fails the test that asked for it.
package synapsetest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// Options configure a Synapse.
type Options struct {
	// ServerName is server_name; default "localhost".
	ServerName string
	// Port is the client listener's loopback port; default a free one.
	Port int
	// Federation serves the federation resource on the listener and lets
	// Synapse talk to other servers; default off (an empty
	// federation_domain_whitelist).
	Federation bool
	// Config sets top-level keys of homeserver.yaml last, over the
	// harness's own (e.g. "experimental_features").
	Config map[string]any
}

// Synapse is a running Synapse.
type Synapse struct {
	// BaseURL is its client listener, http://127.0.0.1:PORT.
	BaseURL string
	// Addr is host:port of BaseURL.
	Addr string
	// ServerName is its server_name.
	ServerName string
	// Secret is its registration_shared_secret.
	Secret string
	// Dir is its directory on the host (ROOT/run/NAME): homeserver.yaml,
	// homeserver.db, synapse.log. It is removed when the test ends.
	Dir string
	// ConfigPath is homeserver.yaml as Synapse sees it, inside the root.
	ConfigPath string
	// Started is how long Start took from the process's start to the first
	// answer of /_matrix/client/versions.
	Started time.Duration

	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// Start runs a Synapse on a fresh database and waits until
// /_matrix/client/versions answers; it is stopped, and its directory
// removed, when the test ends.
func Start(t testing.TB, o Options) *Synapse {
	t.Helper()
	root := Root(t)
	if o.ServerName == "" {
		o.ServerName = "localhost"
	}
	if o.Port == 0 {
		o.Port = freeport.Port(t)
	}
	runs := filepath.Join(root, "run")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		t.Fatal(err)
	}
	sweep(runs)
	dir, err := os.MkdirTemp(runs, "")
	if err != nil {
		t.Fatal(err)
	}
	// The lock says "in use" to other processes' sweep for as long as this
	// test runs; the cleanups run in reverse: stop, then remove and unlock.
	lock := lockRun(t, dir)
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
		lock.Close()
	})
	inside := "/run/" + filepath.Base(dir)
	secret := make([]byte, 16)
	rand.Read(secret)
	s := &Synapse{
		Addr:       "127.0.0.1:" + strconv.Itoa(o.Port),
		ServerName: o.ServerName,
		Secret:     hex.EncodeToString(secret),
		Dir:        dir,
		ConfigPath: inside + "/homeserver.yaml",
		exited:     make(chan struct{}),
	}
	s.BaseURL = "http://" + s.Addr
	template := filepath.Join(root, "template")
	copyFile(t, filepath.Join(template, "homeserver.db"), filepath.Join(dir, "homeserver.db"), 0o600)
	copyFile(t, filepath.Join(template, "localhost.signing.key"), filepath.Join(dir, "signing.key"), 0o600)
	generated, err := os.ReadFile(filepath.Join(template, "homeserver.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := editConfig(generated, runConfig{ServerName: o.ServerName, Dir: inside, Port: o.Port, Secret: s.Secret, Federation: o.Federation, Extra: o.Config})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "homeserver.yaml"), cfg)
	writeFile(t, filepath.Join(dir, "log.yaml"), []byte(logConfig))
	if s.log, err = os.Create(filepath.Join(dir, "synapse.log")); err != nil {
		t.Fatal(err)
	}
	s.cmd = chrootCommand(root, "python3", "-m", "synapse.app.homeserver", "-c", s.ConfigPath)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting synapse: %v", err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.stop)
	c := &http.Client{Timeout: 2 * time.Second}
	err = wait.For(2*time.Minute, func() error {
		select {
		case <-s.exited:
			return nil // reported below, without waiting out the deadline
		default:
		}
		resp, err := c.Get(s.BaseURL + "/_matrix/client/versions")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/_matrix/client/versions answered %s", resp.Status)
		}
		return nil
	})
	select {
	case <-s.exited:
		err = errors.New(s.cmd.ProcessState.String())
	default:
	}
	if err != nil {
		t.Fatalf("synapse did not come up: %v\n%s", err, s.LogTail())
	}
	s.Started = time.Since(began)
	t.Logf("synapse %s up at %s in %v", o.ServerName, s.BaseURL, s.Started.Round(time.Millisecond))
	return s
}

// stop ends Synapse with SIGTERM (it shuts down cleanly in about a
// second), SIGKILL after 20 s, and reaps its process group.
func (s *Synapse) stop() {
	pid := s.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	s.log.Close()
}

// LogTail is the end of Synapse's log, for failure messages.
func (s *Synapse) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "synapse.log"))
	return tail(b, 6000)
}

// lockRun holds an exclusive lock on dir/.lock until the returned file is
// closed (or the process dies).
func lockRun(t testing.TB, dir string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		t.Fatalf("locking %s: %v", dir, err)
	}
	return f
}

// sweep removes run directories that no live process holds: those of a
// test binary that was killed before its cleanups ran. A directory whose
// lock file is missing or new is being created (its lock is taken a moment
// after the file is) and is left alone.
func sweep(runs string) {
	entries, _ := os.ReadDir(runs)
	for _, e := range entries {
		dir := filepath.Join(runs, e.Name())
		if fi, err := os.Stat(filepath.Join(dir, ".lock")); err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(dir)
		}
		f.Close()
	}
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
