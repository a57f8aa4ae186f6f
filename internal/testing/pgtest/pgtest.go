// Package pgtest runs a PostgreSQL server of the test's own, from Debian's
// postgresql package, with password authentication over TCP as a shared
// database has it; it can be stopped and started again on the same port.
package pgtest

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// Server is a running (or stopped) PostgreSQL.
type Server struct {
	// URL reaches the database "wellknownd" as the user "wellknownd",
	// without the password; Password and PasswordFile hold it.
	URL, Password, PasswordFile string
	// Addr is 127.0.0.1:PORT.
	Addr string

	t          testing.TB
	bin, data  string
	uid, gid   int
	asPostgres bool
	cmd        *exec.Cmd
	exited     chan struct{}
}

// Start initialises a cluster in a new directory and starts it.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: dendritetest.PostgresBin(t), Password: "pw-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	// PostgreSQL refuses to run as root: then it runs as the postgres
	// user, in a directory outside t.TempDir (whose parents are 0700).
	root, err := os.MkdirTemp("", "wellknownd-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	s.data = filepath.Join(root, "data")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and there is no postgres user: %v (./test installs the postgresql package)", err)
		}
		s.uid, _ = strconv.Atoi(u.Uid)
		s.gid, _ = strconv.Atoi(u.Gid)
		s.asPostgres = true
		os.Chown(root, s.uid, s.gid)
	}
	pwfile := filepath.Join(root, "pwfile")
	os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o644)
	s.PasswordFile = filepath.Join(t.TempDir(), "pgpassword")
	os.WriteFile(s.PasswordFile, []byte(s.Password+"\n"), 0o600)
	if out, err := s.command("initdb", "-D", s.data, "-U", "wellknownd", "--pwfile", pwfile, "--auth-local=trust",
		"--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Addr = freeport.Addr(t)
	s.URL = "postgres://wellknownd@" + s.Addr + "/wellknownd?sslmode=disable"
	s.Start()
	if out, err := s.command("psql", "-h", root, "-p", s.port(), "-U", "wellknownd", "-d", "postgres", "-c", "CREATE DATABASE wellknownd").CombinedOutput(); err != nil {
		t.Fatalf("creating the database: %v\n%s", err, out)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) port() string { return s.Addr[len("127.0.0.1:"):] }

// command runs a PostgreSQL program, as the postgres user when this is root.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	if s.asPostgres {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)}}
	}
	return cmd
}

// Start starts the server (again) and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	sock := filepath.Dir(s.data)
	s.cmd = s.command("postgres", "-D", s.data, "-k", sock, "-p", s.port(), "-h", "127.0.0.1")
	if s.cmd.SysProcAttr == nil {
		s.cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	s.cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	logf, _ := os.OpenFile(filepath.Join(sock, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("postgres: %v", err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()
	if err := wait.For(30*time.Second, func() error {
		return s.command("pg_isready", "-h", "127.0.0.1", "-p", s.port(), "-q").Run()
	}); err != nil {
		log, _ := os.ReadFile(filepath.Join(sock, "postgres.log"))
		s.t.Fatalf("postgres did not start: %v\n%s", err, log)
	}
}

// Stop shuts the server down now (fast mode: clients are disconnected).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Query runs SQL with psql in the test's database and returns its
// unaligned, tuples-only output.
func (s *Server) Query(sql string) string {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, "psql"), "-h", "127.0.0.1", "-p", s.port(), "-U", "wellknownd", "-d", "wellknownd", "-Atc", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return string(out)
}
