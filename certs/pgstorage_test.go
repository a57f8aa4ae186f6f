package certs

import (
	"context"
	"errors"
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
	s.lease = lease
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
func TestPGLocks(t *testing.T) {
	pg := pgtest.Start(t)
	const lease = 2 * time.Second
	a, b := newPG(t, pg, lease), newPG(t, pg, lease)
	ctx := context.Background()
	if err := a.Lock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_example.com"); ok || err != nil {
		t.Fatalf("a second holder got the lock: %v %v", ok, err)
	}
	// A live holder keeps it past its lease: the renewals extend it.
	time.Sleep(2 * lease)
	if ok, _ := b.TryLock(ctx, "issue_cert_example.com"); ok || !a.Held("issue_cert_example.com") {
		t.Fatal("the live holder lost its lock")
	}
	got := make(chan time.Time, 1)
	go func() {
		if err := b.Lock(ctx, "issue_cert_example.com"); err != nil {
			t.Error(err)
		}
		got <- time.Now()
	}()
	time.Sleep(300 * time.Millisecond)
	released := time.Now()
	if err := a.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if at := <-got; at.Sub(released) > 2*time.Second {
		t.Fatalf("the waiter took the released lock after %v", at.Sub(released))
	}
	if err := b.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}

	// A holder that dies: its connections go, its renewals stop.
	dead := newPG(t, pg, lease)
	if err := dead.Lock(ctx, "issue_cert_matrix.example.com"); err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	dead.pool.Close()
	// Never both: while b waits, the dead holder must stop believing
	// before b has the lock.
	var both atomic.Bool
	var bHas atomic.Bool
	stopWatch := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			if bHas.Load() && dead.Held("issue_cert_matrix.example.com") {
				both.Store(true)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if err := b.Lock(ctx, "issue_cert_matrix.example.com"); err != nil {
		t.Fatal(err)
	}
	bHas.Store(true)
	took := time.Since(died)
	time.Sleep(50 * time.Millisecond)
	close(stopWatch)
	if both.Load() || dead.Held("issue_cert_matrix.example.com") {
		t.Fatal("the dead holder still believed it held the lock when another had it")
	}
	if took > lease+2*time.Second {
		t.Fatalf("the lock of a dead holder was taken after %v, lease %v", took, lease)
	}
	if dead.Status().LostLocks != 1 {
		t.Errorf("lost locks counted: %d", dead.Status().LostLocks)
	}
	t.Logf("a dead holder's lock was taken over after %v (lease %v)", took.Round(10*time.Millisecond), lease)
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
