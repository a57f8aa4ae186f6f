package certs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGStorage is certmagic's Storage and Locker on PostgreSQL: what lets
// several edges share certificates, the ACME account, challenge tokens and
// the coordination of who orders what. Its two tables live in a schema of
// their own, wellknownd, created when missing; it never reads or writes
// anything else in the database (which may be Dendrite's).
//
// Locks are leases on the database's clock, renewed by their holder. The
// choice against session-level advisory locks: certmagic's Locker contract
// is "only one holder; a holder that dies must not block the others
// forever". An advisory lock lives as long as one database session, so a
// pool would have to pin a connection per held lock, and a holder on the
// wrong side of a partition keeps it until TCP keepalives give up, for a
// time set by kernel and server settings, not by us. A lease row is plain
// SQL on any connection, is bounded by lockLease whatever happened to the
// holder (kill -9, partition, a stuck process), and its expiry is decided
// by one clock, PostgreSQL's, so edges with skewed clocks agree.
//
// Two holders never both believe they hold a lock: the holder counts its
// lease from before it sent the statement that set or renewed it, while
// PostgreSQL counts from when it ran it, so the holder's belief always ends
// first. When a renewal does not succeed before the holder's own deadline,
// it stops believing (Held turns false, the loss is logged and counted),
// and no other edge can have had the lock before that point. certmagic's
// critical sections are idempotent (it looks in storage for the
// certificate again once it has the lock), so the cost of a lost lease
// that certmagic's goroutine does not notice is at most one extra order,
// never two certificates half-written: every Store is one statement.
type PGStorage struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// holder names this process in the locks table (host/pid/random), for
	// the operator reading it and so that Unlock removes only its own row.
	holder string
	// lease is how long a lock outlives its holder's last renewal;
	// renewal is how often the holder renews it.
	lease, renewal time.Duration

	mu   sync.Mutex
	held map[string]*heldLock

	// Counters for metrics and /status.
	errors    atomic.Int64
	lostLocks atomic.Int64
	lockRTs   atomic.Int64
	up        atomic.Bool
	lastErr   atomic.Pointer[string]
}

// heldLock is one lock this process holds, and its renewer.
type heldLock struct {
	token string
	stop  context.CancelFunc
	done  chan struct{}
	// deadline is when this process stops believing it holds the lock
	// (unix nanoseconds), moved on by each renewal.
	deadline atomic.Int64
}

// lockLease bounds how long a dead holder blocks the others; its holder
// renews it every third of that. Long enough that a busy database does not
// cost a live holder its lock, short enough that a crashed edge's order is
// taken over within seconds.
const lockLease = 10 * time.Second

const pgSchema = `
CREATE SCHEMA IF NOT EXISTS wellknownd;
CREATE TABLE IF NOT EXISTS wellknownd.certmagic_data (
	key      text PRIMARY KEY,
	value    bytea NOT NULL,
	modified timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wellknownd.certmagic_locks (
	name    text PRIMARY KEY,
	holder  text NOT NULL,
	expires timestamptz NOT NULL
);`

// NewPGStorage connects to PostgreSQL at url, with password (if not "")
// instead of one in the URL or the environment, and creates the tables.
// It fails when the database cannot be reached: an edge that starts
// without its shared storage would order certificates on its own.
func NewPGStorage(ctx context.Context, url, password string, log *slog.Logger) (*PGStorage, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("tls.storage: %w", err)
	}
	if password != "" {
		cfg.ConnConfig.Password = password
	}
	// Few, short statements; a handful of connections is plenty, and the
	// database is shared with the homeserver.
	cfg.MaxConns = 4
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tls.storage: %w", err)
	}
	s := &PGStorage{pool: pool, log: log, lease: lockLease, renewal: lockLease / 3, held: map[string]*heldLock{}, holder: fmt.Sprintf("%s/%d/%s", hostname(), os.Getpid(), randomHex(6))}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// Edges that start together would race on CREATE ... IF NOT EXISTS
	// (which is not atomic in PostgreSQL): one at a time, under a lock
	// that ends with the transaction.
	err = pgx.BeginFunc(cctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(cctx, `SELECT pg_advisory_xact_lock(hashtext('wellknownd.certmagic schema'))`); err != nil {
			return err
		}
		_, err := tx.Exec(cctx, pgSchema)
		return err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("tls.storage: creating wellknownd's tables in %s: %w", cfg.ConnConfig.Database, err)
	}
	s.up.Store(true)
	return s, nil
}

// Close releases the locks this process holds and the connections.
func (s *PGStorage) Close() {
	s.mu.Lock()
	names := make([]string, 0, len(s.held))
	for n := range s.held {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.Unlock(ctx, n)
		cancel()
	}
	s.pool.Close()
}

// observe records whether the database answered; a broken connection is
// an outage, a missing key is not.
func (s *PGStorage) observe(err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		if !s.up.Swap(true) {
			s.log.Info("tls.storage: PostgreSQL answers again")
		}
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	s.errors.Add(1)
	msg := err.Error()
	s.lastErr.Store(&msg)
	if s.up.Swap(false) {
		s.log.Error("tls.storage: PostgreSQL does not answer; certificates in memory keep serving, and it is retried", "err", err)
	}
	return err
}

// StorageStatus is what /status and the metrics say about the storage.
type StorageStatus struct {
	Kind      string `json:"kind"`
	Reachable bool   `json:"reachable"`
	Errors    int64  `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	LostLocks int64  `json:"lost_locks"`
	// LockRoundTrips counts lock statements sent: acquisition attempts,
	// renewals and releases.
	LockRoundTrips int64 `json:"lock_round_trips"`
}

// Status reports the storage's state.
func (s *PGStorage) Status() StorageStatus {
	st := StorageStatus{Kind: "postgres", Reachable: s.up.Load(), Errors: s.errors.Load(), LostLocks: s.lostLocks.Load(), LockRoundTrips: s.lockRTs.Load()}
	if p := s.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// Ping checks the database now.
func (s *PGStorage) Ping(ctx context.Context) error {
	return s.observe(s.pool.Ping(ctx))
}

func (s *PGStorage) Store(ctx context.Context, key string, value []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO wellknownd.certmagic_data (key, value, modified) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified = excluded.modified`, key, value)
	return s.observe(err)
}

func (s *PGStorage) Load(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM wellknownd.certmagic_data WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		err = fs.ErrNotExist
	}
	return v, s.observe(err)
}

// Delete removes key and, when it is a "directory", every key below it.
func (s *PGStorage) Delete(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM wellknownd.certmagic_data WHERE key = $1 OR starts_with(key, $1 || '/')`, key)
	return s.observe(err)
}

func (s *PGStorage) Exists(ctx context.Context, key string) bool {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM wellknownd.certmagic_data WHERE key = $1 OR starts_with(key, $1 || '/'))`, key).Scan(&ok)
	return s.observe(err) == nil && ok
}

// List returns the keys below path: its direct children, or with recursive
// every key and "directory" below it, as certmagic's file storage does.
func (s *PGStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	prefix := strings.TrimSuffix(path, "/") + "/"
	rows, err := s.pool.Query(ctx, `SELECT key FROM wellknownd.certmagic_data WHERE starts_with(key, $1) ORDER BY key`, prefix)
	if err != nil {
		return nil, s.observe(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.observe(err)
	}
	s.observe(nil)
	if len(keys) == 0 {
		return nil, fs.ErrNotExist
	}
	var out []string
	seen := map[string]bool{}
	for _, k := range keys {
		parts := strings.Split(strings.TrimPrefix(k, prefix), "/")
		n := 1
		if recursive {
			n = len(parts)
		}
		for i := 1; i <= n; i++ {
			p := prefix + strings.Join(parts[:i], "/")
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *PGStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	var size int64
	var modified time.Time
	err := s.pool.QueryRow(ctx, `SELECT length(value), modified FROM wellknownd.certmagic_data WHERE key = $1`, key).Scan(&size, &modified)
	if err == nil {
		s.observe(nil)
		return certmagic.KeyInfo{Key: key, Modified: modified, Size: size, IsTerminal: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return certmagic.KeyInfo{}, s.observe(err)
	}
	if s.Exists(ctx, key) {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, fs.ErrNotExist
}

// Lock takes the named lock, waiting while another holder's lease is
// live; see PGStorage for the guarantees.
func (s *PGStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if ok || (err != nil && ctx.Err() != nil) {
			return err
		}
		// A database that does not answer is retried too: the holder's
		// lease may run out meanwhile, and certmagic expects Lock to
		// block until it has the lock or its context ends.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// TryLock takes the named lock if no live lease holds it.
func (s *PGStorage) TryLock(ctx context.Context, name string) (bool, error) {
	token := s.holder + "/" + randomHex(6)
	sent := time.Now()
	s.lockRTs.Add(1)
	tag, err := s.pool.Exec(ctx, `INSERT INTO wellknownd.certmagic_locks (name, holder, expires)
		VALUES ($1, $2, now() + make_interval(secs => $3))
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE wellknownd.certmagic_locks.expires < now()`, name, token, s.lease.Seconds())
	if err := s.observe(err); err != nil {
		return false, fmt.Errorf("tls.storage: taking the lock %s: %w", name, err)
	}
	if tag.RowsAffected() != 1 {
		return false, nil
	}
	rctx, stop := context.WithCancel(context.Background())
	h := &heldLock{token: token, stop: stop, done: make(chan struct{})}
	h.deadline.Store(sent.Add(s.lease).UnixNano())
	s.mu.Lock()
	s.held[name] = h
	s.mu.Unlock()
	go s.renew(rctx, name, h)
	return true, nil
}

// renew keeps a held lease alive until Unlock, and stops believing in it
// when a renewal finds another holder or cannot be confirmed before the
// holder's own deadline.
func (s *PGStorage) renew(ctx context.Context, name string, h *heldLock) {
	defer close(h.done)
	t := time.NewTicker(s.renewal)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		deadline := time.Unix(0, h.deadline.Load())
		sent := time.Now()
		rctx, cancel := context.WithDeadline(ctx, deadline)
		s.lockRTs.Add(1)
		tag, err := s.pool.Exec(rctx, `UPDATE wellknownd.certmagic_locks SET expires = now() + make_interval(secs => $3)
			WHERE name = $1 AND holder = $2`, name, h.token, s.lease.Seconds())
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && tag.RowsAffected() == 1:
			s.observe(nil)
			h.deadline.Store(sent.Add(s.lease).UnixNano())
			continue
		case err == nil:
			err = errors.New("another edge holds it now")
		default:
			s.observe(err)
			if time.Now().Before(deadline) {
				continue // try again before the lease runs out
			}
		}
		s.lostLocks.Add(1)
		h.deadline.Store(0)
		s.log.Error("tls.storage: lost the lock before its work was done; another edge may take the work over", "lock", name, "err", err)
		return
	}
}

// Held says whether this process still holds the named lock: taken, not
// released, and its lease confirmed within its own deadline.
func (s *PGStorage) Held(name string) bool {
	s.mu.Lock()
	h := s.held[name]
	s.mu.Unlock()
	return h != nil && time.Now().UnixNano() < h.deadline.Load()
}

// Unlock releases a lock this process holds; another holder's row (after
// a lost lease) is left alone.
func (s *PGStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("tls.storage: unlock %s: not held by this process", name)
	}
	h.stop()
	<-h.done
	s.lockRTs.Add(1)
	_, err := s.pool.Exec(ctx, `DELETE FROM wellknownd.certmagic_locks WHERE name = $1 AND holder = $2`, name, h.token)
	if err := s.observe(err); err != nil {
		// The lease runs out by itself.
		return fmt.Errorf("tls.storage: releasing the lock %s: %w", name, err)
	}
	return nil
}

// watch pings the database every few seconds until ctx ends, so that an
// outage (and the recovery) is seen, logged and exported when it happens,
// not at the next renewal check.
func (s *PGStorage) watch(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		s.Ping(pctx)
		cancel()
	}
}

func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "edge"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	_ certmagic.Storage   = (*PGStorage)(nil)
	_ certmagic.TryLocker = (*PGStorage)(nil)
)
