package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/pgtest"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

func newPG(t *testing.T, pg *pgtest.Server, lease time.Duration) *PGStorage {
	t.Helper()
	s, err := NewPGStorage(context.Background(), pg.URL, pg.Password, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.lease, s.renewal = lease, lease/3
	t.Cleanup(s.Close)
	return s
}

// TestPGStorage: the semantics certmagic relies on, as its file storage has
// them, on a real PostgreSQL, and nothing outside wellknownd's schema.
func TestPGStorage(t *testing.T) {
	pg := pgtest.Start(t)
	s := newPG(t, pg, lockLease)
	ctx := context.Background()
	if _, err := s.Load(ctx, "certificates/acme/example.com/example.com.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	for _, k := range []string{"certificates/acme/example.com/example.com.crt", "certificates/acme/example.com/example.com.key",
		"certificates/acme/matrix.example.com/matrix.example.com.crt", "acme/account.json"} {
		if err := s.Store(ctx, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	s.Store(ctx, "acme/account.json", []byte("second"))
	if v, err := s.Load(ctx, "acme/account.json"); err != nil || string(v) != "second" {
		t.Fatalf("Load after overwrite: %q %v", v, err)
	}
	if !s.Exists(ctx, "certificates/acme") || !s.Exists(ctx, "acme/account.json") || s.Exists(ctx, "certificates/acm") {
		t.Fatal("Exists of a directory, a key, a partial name")
	}
	got, err := s.List(ctx, "certificates/acme", false)
	if want := []string{"certificates/acme/example.com", "certificates/acme/matrix.example.com"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("List: %q %v, want %q", got, err, want)
	}
	got, _ = s.List(ctx, "certificates", true)
	if len(got) != 6 || got[0] != "certificates/acme" {
		t.Fatalf("List recursive: %q", got)
	}
	if _, err := s.List(ctx, "nothing", false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List of nothing: %v", err)
	}
	if ki, err := s.Stat(ctx, "acme/account.json"); err != nil || !ki.IsTerminal || ki.Size != 6 || time.Since(ki.Modified) > time.Minute {
		t.Fatalf("Stat key: %+v %v", ki, err)
	}
	if ki, err := s.Stat(ctx, "certificates/acme"); err != nil || ki.IsTerminal {
		t.Fatalf("Stat directory: %+v %v", ki, err)
	}
	if err := s.Delete(ctx, "certificates/acme/example.com"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/acme/example.com/example.com.key") || !s.Exists(ctx, "certificates/acme/matrix.example.com") {
		t.Fatal("Delete of a directory removed the wrong keys")
	}
	if err := s.Delete(ctx, "not/there"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if tables := pg.Query(`SELECT string_agg(table_schema || '.' || table_name, ' ' ORDER BY table_name) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`); tables != "wellknownd.certmagic_data wellknownd.certmagic_locks\n" {
		t.Fatalf("tables: %q", tables)
	}
	// A second edge creates nothing new and sees the same data.
	if v, err := newPG(t, pg, lockLease).Load(ctx, "acme/account.json"); err != nil || string(v) != "second" {
		t.Fatalf("second storage: %q %v", v, err)
	}
}

// TestPGLocks: one holder at a time; a waiting Lock gets it when it is
// released; a holder that stops renewing (a crash or a partition) loses it
// within the lease, and stops believing it holds it before anyone else
// has it.
//
// None of it depends on how busy the machine is: the live holders' leases
// are longer than any stall of the test, and when things happened is read
// from the lock rows, on the clock that decides, the database's (the
// holders share it: one machine).
func TestPGLocks(t *testing.T) {
	pg := pgtest.Start(t)
	const lease = time.Minute
	a, b := newPG(t, pg, lease), newPG(t, pg, lease)
	// Renewals seen without waiting for a third of the lease.
	a.renewal = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const name = "issue_cert_example.com"
	if err := a.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, name); ok || err != nil {
		t.Fatalf("a second holder got the lock: %v %v", ok, err)
	}
	// A live holder keeps it past its lease: a few renewals move the
	// database's expiry and the holder's own deadline on.
	first, firstDeadline := readLock(t, b, name), heldBy(a, name).deadline.Load()
	wait.Until(t, "renewals", 30*time.Second, func() error {
		r := readLock(t, b, name)
		if n := a.Status().LockRoundTrips; n < 4 || r.holder != first.holder || !r.expires.After(first.expires) || heldBy(a, name).deadline.Load() <= firstDeadline {
			return fmt.Errorf("%d statements, the row %+v (at first %+v)", n, r, first)
		}
		return nil
	})
	if ok, _ := b.TryLock(ctx, name); ok || !a.Held(name) || a.Status().LostLocks != 0 {
		t.Fatal("the live holder lost its lock")
	}

	// A waiting Lock gets it on release, not when the lease runs out.
	got := make(chan error, 1)
	asked := b.Status().LockRoundTrips
	go func() { got <- b.Lock(ctx, name) }()
	wait.True(t, "the waiter to ask for the lock", 30*time.Second, func() bool { return b.Status().LockRoundTrips > asked })
	held := readLock(t, b, name)
	select {
	case err := <-got:
		t.Fatalf("the waiter got a held lock: %v", err)
	default:
	}
	released := time.Now()
	if err := a.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	r := readLock(t, b, name)
	if taken := r.expires.Add(-lease); r.holder != heldBy(b, name).token || !taken.Before(held.expires) {
		t.Fatalf("the waiter took the lock at %v as %s, a's lease ran to %v", taken, r.holder, held.expires)
	}
	t.Logf("the waiter had the released lock after %v", time.Since(released).Round(10*time.Millisecond))
	if err := b.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}

	// A holder that dies: its connections go, its renewals stop. Its
	// lease is short, as it is waited for.
	const deadLease = 2 * time.Second
	const name2 = "issue_cert_matrix.example.com"
	dead := newPG(t, pg, deadLease)
	if err := dead.Lock(ctx, name2); err != nil {
		t.Fatal(err)
	}
	h := heldBy(dead, name2)
	died := time.Now()
	dead.pool.Close()
	// No renewal succeeds now: this is the end of its belief, or 0 when
	// it already saw that belief end.
	believed := h.deadline.Load()
	if believed == 0 {
		believed = time.Now().UnixNano()
	}
	// It loses it within the lease: the database gives it to anyone a
	// lease after the dead holder's last statement at most.
	stopped := readLock(t, b, name2)
	if stopped.holder != h.token || stopped.expires.After(stopped.now.Add(deadLease)) {
		t.Fatalf("the dead holder's row %+v, lease %v", stopped, deadLease)
	}
	// Never both: while b waits, the dead holder must stop believing
	// before b has the lock.
	var both, bHas atomic.Bool
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			if bHas.Load() && dead.Held(name2) {
				both.Store(true)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if err := b.Lock(ctx, name2); err != nil {
		t.Fatal(err)
	}
	bHas.Store(true)
	took := time.Since(died)
	r = readLock(t, b, name2)
	taken := r.expires.Add(-lease)
	if r.holder != heldBy(b, name2).token || !taken.After(stopped.expires) {
		t.Fatalf("b took the lock at %v as %s, the dead holder's lease ran to %v", taken, r.holder, stopped.expires)
	}
	if taken.UnixNano() < believed {
		t.Fatalf("b took the lock at %v, the dead holder believed it held it until %v", taken, time.Unix(0, believed))
	}
	// The loss is counted, at its renewer's next try.
	wait.True(t, "the dead holder to count its lost lock", 30*time.Second, func() bool { return dead.Status().LostLocks > 0 })
	close(stopWatch)
	<-watched
	if both.Load() || dead.Held(name2) {
		t.Fatal("the dead holder still believed it held the lock when another had it")
	}
	if n := dead.Status().LostLocks; n != 1 {
		t.Errorf("lost locks counted: %d", n)
	}
	t.Logf("a dead holder's lock was taken over after %v (lease %v), %v after its lease ran out on the database's clock",
		took.Round(10*time.Millisecond), deadLease, taken.Sub(stopped.expires).Round(time.Millisecond))
}

// lockRow is a lock's row, and the database's clock when it was read.
type lockRow struct {
	holder       string
	expires, now time.Time
}

func readLock(t *testing.T, s *PGStorage, name string) lockRow {
	t.Helper()
	var r lockRow
	err := s.pool.QueryRow(context.Background(), `SELECT holder, expires, now() FROM wellknownd.certmagic_locks WHERE name = $1`, name).Scan(&r.holder, &r.expires, &r.now)
	if err != nil {
		t.Fatalf("reading the lock %s: %v", name, err)
	}
	return r
}

// heldBy is s's record of a lock it holds, or nil.
func heldBy(s *PGStorage, name string) *heldLock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[name]
}

// TestPGOutage: with PostgreSQL down the storage says so, and recovers by
// itself when it is back.
func TestPGOutage(t *testing.T) {
	pg := pgtest.Start(t)
	s := newPG(t, pg, lockLease)
	ctx := context.Background()
	s.Store(ctx, "k", []byte("v"))
	pg.Stop()
	if _, err := s.Load(ctx, "k"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load with the database down: %v", err)
	}
	if st := s.Status(); st.Reachable || st.Errors == 0 || st.LastError == "" {
		t.Fatalf("status with the database down: %+v", st)
	}
	pg.Start()
	wait.Until(t, "the storage answers again", 20*time.Second, func() error {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return s.Ping(pctx)
	})
	if v, err := s.Load(ctx, "k"); err != nil || string(v) != "v" || !s.Status().Reachable {
		t.Fatalf("after the outage: %q %v %+v", v, err, s.Status())
	}
}
