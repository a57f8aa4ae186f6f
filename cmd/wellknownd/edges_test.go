package main

import (
	"crypto/tls"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/acmetest"
	"github.com/wellknownd/wellknownd/internal/testing/deploytest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/pgtest"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestEdgeKilledMidOrder: three wellknownd processes share PostgreSQL
// storage; the one that holds the certificate lock is killed with SIGKILL
// while its order waits on the CA. Another edge takes the lock once the
// dead one's lease runs out, and finishes the certificate.
func TestEdgeKilledMidOrder(t *testing.T) {
	bin := deploytest.Build(t, t.TempDir())
	pg := pgtest.Start(t)
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.Start(t, httpPort, tlsPort)
	caught, release := ca.HoldChallenges()
	defer release()

	procs := map[int]*exec.Cmd{}
	dir := t.TempDir()
	for n := 1; n <= 3; n++ {
		cfg := filepath.Join(dir, fmt.Sprintf("edge%d.yaml", n))
		writeFile(t, cfg, edgeconf.SharedEdge(n, httpPort, tlsPort, ca.DirectoryURL, ca.APIRootFile, pg.URL, pg.PasswordFile))
		log, _ := os.Create(filepath.Join(dir, fmt.Sprintf("edge%d.log", n)))
		cmd := exec.Command(bin, "serve", "-config", cfg)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[n] = cmd
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
	}
	select {
	case <-caught:
	case <-time.After(60 * time.Second):
		t.Fatal("no edge placed an order")
	}
	// The lock's holder is host/pid/…: kill that process.
	holder := strings.TrimSpace(pg.Query(`SELECT holder FROM wellknownd.certmagic_locks WHERE name LIKE '%example.com%'`))
	parts := strings.Split(holder, "/")
	if len(parts) < 3 {
		t.Fatalf("lock holder %q", holder)
	}
	pid, _ := strconv.Atoi(parts[1])
	var dead int
	for n, cmd := range procs {
		if cmd.Process.Pid == pid {
			dead = n
		}
	}
	if dead == 0 {
		t.Fatalf("the lock holder %q is none of the edges", holder)
	}
	procs[dead].Process.Signal(syscall.SIGKILL)
	procs[dead].Wait()
	killed := time.Now()
	// When its lease runs out, on the database's clock (the edges' too: one
	// machine). Unless a stalled test finds it taken already, and then it
	// is known only to be at most a lease after the kill.
	const lease = 10 * time.Second // certs.lockLease
	deadUntil, read := dbTime(t, pg.Query(`SELECT extract(epoch FROM max(expires)) FROM wellknownd.certmagic_locks WHERE holder = '`+holder+`'`))
	if !read {
		deadUntil = killed.Add(lease)
	}
	var alive []int
	for n := range procs {
		if n != dead {
			alive = append(alive, n)
		}
	}
	// The CA validates at a live edge from now on.
	ca.DNS.AddDNSARecord("example.com", []string{fmt.Sprintf("127.0.0.%d", alive[0])})
	release()

	// A live edge holds the lock once the dead one's lease (10 s) is over:
	// when, the database says (the new lease's start), not how soon this
	// test's polling saw it.
	var taken time.Time
	if err := wait.For(30*time.Second, func() error {
		row := strings.Fields(pg.Query(`SELECT holder || ' ' || extract(epoch FROM expires) FROM wellknownd.certmagic_locks WHERE name LIKE '%example.com%'`))
		if len(row) == 2 {
			if h := strings.Split(row[0], "/"); len(h) > 1 && h[1] != parts[1] {
				expires, _ := dbTime(t, row[1])
				taken = expires.Add(-lease)
				return nil
			}
		}
		return fmt.Errorf("holder and expiry %q", row)
	}); err != nil {
		t.Fatalf("no live edge took the lock: %v", err)
	}
	tookLock := taken.Sub(killed)
	if deadUntil.After(killed.Add(lease)) {
		t.Errorf("the dead holder's lease ran until %v after it died; the lease is %v", deadUntil.Sub(killed), lease)
	}
	if read && !taken.After(deadUntil) {
		t.Errorf("a live edge took the lock %v before the dead holder's lease ran out", deadUntil.Sub(taken))
	}
	// The waiting edges ask every second.
	if late := taken.Sub(deadUntil); late > 5*time.Second {
		t.Errorf("a live edge took the lock %v after the dead holder's lease ran out (%v after it died)", late, tookLock)
	}

	for _, n := range alive {
		addr := fmt.Sprintf("127.0.0.%d:%d", n, tlsPort)
		if err := wait.For(60*time.Second, func() error {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "example.com", RootCAs: ca.Roots()})
			if err == nil {
				c.Close()
			}
			return err
		}); err != nil {
			logs, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("edge%d.log", n)))
			t.Fatalf("edge %d after the holder was killed: %v\n%s", n, err, logs)
		}
	}
	t.Logf("edge %d killed while holding the lock; a live edge took the lock %v later (%v after its lease ran out), and edges %v serve the certificate %v later",
		dead, tookLock.Round(100*time.Millisecond), taken.Sub(deadUntil).Round(time.Millisecond), alive, time.Since(killed).Round(100*time.Millisecond))
	if n := ca.NewOrders(); n != 2 {
		t.Errorf("%d orders, want 2: the dead edge's and the one that finished", n)
	}
}

// dbTime parses a time psql printed as extract(epoch FROM …), and says
// whether there was one.
func dbTime(t *testing.T, s string) (time.Time, bool) {
	t.Helper()
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("a time from PostgreSQL: %q: %v", s, err)
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true
}
