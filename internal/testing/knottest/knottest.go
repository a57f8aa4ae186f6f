// Package knottest runs Knot DNS (Debian's knotd) for tests: the
// authoritative nameserver of one zone that takes dynamic updates (RFC
// 2136) signed with a TSIG key, and nothing unsigned. It is the server an
// operator of provider rfc2136 runs, or one like it.
package knottest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// Server is a running knotd.
type Server struct {
	// Addr is where it answers, over UDP and TCP: 127.0.0.1:PORT.
	Addr string
	// Zone is the zone it serves, without the trailing dot.
	Zone string
	// KeyFile is the TSIG key its update ACL accepts, in BIND's format
	// (tsig-keygen's), for tls.dns.rfc2136.tsig_key_file.
	KeyFile string
	// KeyName and Secret are that key's name and base64 secret.
	KeyName, Secret string

	mu  sync.Mutex
	log bytes.Buffer
}

// Start runs knotd for zone, whose names all resolve to 127.0.0.1. knotd
// missing is a failure, not a skip: ./test installs Debian's knot.
func Start(t testing.TB, zone string) *Server {
	t.Helper()
	bin, err := exec.LookPath("knotd")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/knotd"); err != nil {
			t.Fatal("knotd not found: install Debian's knot package (./test does)")
		}
	}
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &Server{Addr: freeport.Addr(t), Zone: zone, KeyName: "wellknownd-test", Secret: base64.StdEncoding.EncodeToString(secret)}
	s.KeyFile = filepath.Join(dir, "tsig.key")
	writeFile(t, s.KeyFile, fmt.Sprintf("key %q {\n\talgorithm hmac-sha256;\n\tsecret %q;\n};\n", s.KeyName, s.Secret))
	zoneFile := filepath.Join(dir, zone+".zone")
	writeFile(t, zoneFile, fmt.Sprintf(`$ORIGIN %s.
$TTL 60
@ SOA ns1 hostmaster 1 3600 600 86400 60
@ NS ns1
@ A 127.0.0.1
* A 127.0.0.1
ns1 A 127.0.0.1
`, zone))
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(s.Addr, ":")
	conf := filepath.Join(dir, "knot.conf")
	// zonefile-sync -1 keeps updates in the journal only: the zone file
	// stays as written, and nothing races the test's temp dir removal.
	writeFile(t, conf, fmt.Sprintf(`server:
  listen: %s@%s
  rundir: %s
key:
  - id: %s
    algorithm: hmac-sha256
    secret: %s
acl:
  - id: signed-updates
    key: %s
    action: update
    update-type: [TXT]
database:
  storage: %s
zone:
  - domain: %s
    file: %s
    acl: signed-updates
    zonefile-sync: -1
    journal-content: changes
log:
  - target: stderr
    any: info
`, host, port, dir, s.KeyName, s.Secret, s.KeyName, filepath.Join(dir, "db"), zone, zoneFile))
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = s.writer(), s.writer()
	if err := cmd.Start(); err != nil {
		t.Fatalf("knotd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("knotd log:\n%s", s.Log())
		}
	})
	wait.Until(t, "knotd answering the SOA of "+zone, 15*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("knotd exited:\n%s", s.Log())
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
		r, err := dns.Exchange(m, s.Addr)
		if err != nil {
			return err
		}
		if len(r.Answer) == 0 {
			return fmt.Errorf("no SOA: %s", dns.RcodeToString[r.Rcode])
		}
		return nil
	})
	return s
}

// TXT are the values of name's TXT records, as Knot answers them now.
func (s *Server) TXT(t testing.TB, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	r, err := dns.Exchange(m, s.Addr)
	if err != nil {
		t.Fatalf("TXT %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}

// Log is what knotd has logged so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *Server) writer() *logWriter { return &logWriter{s} }

type logWriter struct{ s *Server }

func (w *logWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
