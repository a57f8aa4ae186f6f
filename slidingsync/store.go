package slidingsync

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL, shared by several edges
	_ "modernc.org/sqlite"             // the embedded store: pure Go, so the binary stays static
)

// store is what the pollers have seen, per device, in SQL that SQLite and
// PostgreSQL both run. Every table is keyed by dev, a device's row in
// slidingsync_devices: one device's data never answers another's request.
type store struct {
	db *sql.DB
	pg bool
	// where names the store in errors.
	where string
	// ready is set once the tables exist. An embedded store makes them
	// on first use: opening SQLite costs about 3 MB of memory that no
	// close gives back, which an edge whose users never ask for sliding
	// sync should not pay.
	ready  atomic.Bool
	initMu sync.Mutex

	// testHookBeforeRooms, when set, runs in view between its first read
	// of the counters and its read of the rooms: a test stores an apply
	// there, as a poller may.
	testHookBeforeRooms func()
}

// schema is the store's tables. bigint and text mean the same in both
// dialects; the device key is the only serial.
func schema(pg bool) []string {
	serial := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if pg {
		serial = "BIGSERIAL PRIMARY KEY"
	}
	return []string{
		// since is the v2 next_batch the device's poller continues from;
		// pos counts the batches applied (a connection's position is
		// taken against it); nid counts the timeline events stored;
		// to_device_seq numbers to-device messages, never reused, since
		// a client acknowledges by number.
		`CREATE TABLE IF NOT EXISTS slidingsync_devices (
			dev ` + serial + `,
			user_id TEXT NOT NULL,
			device_id TEXT NOT NULL,
			since TEXT NOT NULL DEFAULT '',
			pos BIGINT NOT NULL DEFAULT 0,
			nid BIGINT NOT NULL DEFAULT 0,
			to_device_seq BIGINT NOT NULL DEFAULT 0,
			owner TEXT NOT NULL DEFAULT '',
			lease_until BIGINT NOT NULL DEFAULT 0,
			otk_counts TEXT NOT NULL DEFAULT '{}',
			fallback_types TEXT NOT NULL DEFAULT '[]',
			UNIQUE (user_id, device_id))`,
		`CREATE TABLE IF NOT EXISTS slidingsync_rooms (
			dev BIGINT NOT NULL,
			room_id TEXT NOT NULL,
			membership TEXT NOT NULL,
			membership_pos BIGINT NOT NULL,
			changed BIGINT NOT NULL,
			bump_stamp BIGINT NOT NULL DEFAULT 0,
			heroes TEXT NOT NULL DEFAULT '[]',
			joined_count BIGINT NOT NULL DEFAULT 0,
			invited_count BIGINT NOT NULL DEFAULT 0,
			notification_count BIGINT NOT NULL DEFAULT 0,
			highlight_count BIGINT NOT NULL DEFAULT 0,
			invite_state TEXT NOT NULL DEFAULT '[]',
			prev_batch TEXT NOT NULL DEFAULT '',
			complete BIGINT NOT NULL DEFAULT 0,
			gap_nid BIGINT NOT NULL DEFAULT 0,
			name TEXT NOT NULL DEFAULT '',
			avatar TEXT NOT NULL DEFAULT '',
			encrypted BIGINT NOT NULL DEFAULT 0,
			room_type TEXT,
			tags TEXT NOT NULL DEFAULT '[]',
			invite_direct BIGINT NOT NULL DEFAULT 0,
			PRIMARY KEY (dev, room_id))`,
		`CREATE TABLE IF NOT EXISTS slidingsync_state (
			dev BIGINT NOT NULL,
			room_id TEXT NOT NULL,
			type TEXT NOT NULL,
			state_key TEXT NOT NULL,
			event TEXT NOT NULL,
			changed BIGINT NOT NULL,
			PRIMARY KEY (dev, room_id, type, state_key))`,
		// A room's name, avatar, encryption, type, tags and whether its
		// invite is direct are kept beside it as they are stored: lists
		// filter and show them on every request.
		// ord orders a room's timeline (backfilled events get smaller
		// ones); nid is when the event arrived, 0 for backfilled ones,
		// which were never live. batch is the v2 prev_batch of the chunk
		// an event opened, so a slice of the timeline can be paginated.
		`CREATE TABLE IF NOT EXISTS slidingsync_timeline (
			dev BIGINT NOT NULL,
			room_id TEXT NOT NULL,
			ord BIGINT NOT NULL,
			nid BIGINT NOT NULL,
			event_id TEXT NOT NULL,
			batch TEXT NOT NULL DEFAULT '',
			event TEXT NOT NULL,
			PRIMARY KEY (dev, room_id, ord))`,
		// room_id is '' for global account data; type m.typing and
		// m.receipt rows in ephemeral are a room's current typing and its
		// merged receipts.
		`CREATE TABLE IF NOT EXISTS slidingsync_account_data (
			dev BIGINT NOT NULL,
			room_id TEXT NOT NULL,
			type TEXT NOT NULL,
			event TEXT NOT NULL,
			changed BIGINT NOT NULL,
			PRIMARY KEY (dev, room_id, type))`,
		`CREATE TABLE IF NOT EXISTS slidingsync_ephemeral (
			dev BIGINT NOT NULL,
			room_id TEXT NOT NULL,
			type TEXT NOT NULL,
			content TEXT NOT NULL,
			changed BIGINT NOT NULL,
			PRIMARY KEY (dev, room_id, type))`,
		`CREATE TABLE IF NOT EXISTS slidingsync_to_device (
			dev BIGINT NOT NULL,
			seq BIGINT NOT NULL,
			event TEXT NOT NULL,
			PRIMARY KEY (dev, seq))`,
		`CREATE TABLE IF NOT EXISTS slidingsync_device_lists (
			dev BIGINT NOT NULL,
			user_id TEXT NOT NULL,
			left_room BIGINT NOT NULL,
			changed BIGINT NOT NULL,
			PRIMARY KEY (dev, user_id))`,
		// A connection's positions: the last few are kept, so a client
		// that retries a request (its answer lost) continues cleanly.
		`CREATE TABLE IF NOT EXISTS slidingsync_connections (
			dev BIGINT NOT NULL,
			conn_id TEXT NOT NULL,
			n BIGINT NOT NULL,
			gen TEXT NOT NULL,
			state TEXT NOT NULL,
			created BIGINT NOT NULL,
			PRIMARY KEY (dev, conn_id, n))`,
	}
}

// openStore opens the SQLite file at path, or the PostgreSQL database at
// pgURL when it is set, and creates the tables.
func openStore(ctx context.Context, path, pgURL string) (*store, error) {
	var s store
	var err error
	if pgURL != "" {
		s.pg = true
		s.db, err = sql.Open("pgx", pgURL)
		if err != nil {
			return nil, fmt.Errorf("opening the sliding-sync store: %w", err)
		}
		s.db.SetMaxOpenConns(8)
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("sliding-sync store directory: %w", err)
		}
		// The file holds other people's messages: only the daemon reads
		// it. SQLite gives its -wal and -shm files the same mode.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening the sliding-sync store: %w", err)
		}
		f.Close()
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("sliding-sync store: %w", err)
		}
		// WAL lets requests read while a poller writes; an immediate
		// transaction takes the write lock when it begins, so two writers
		// wait their turn (busy_timeout) instead of failing on upgrade.
		dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(OFF)&_txlock=immediate"
		s.db, err = sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("opening the sliding-sync store %s: %w", path, err)
		}
		s.db.SetMaxOpenConns(4)
	}
	s.where = path
	if s.pg {
		s.where = "PostgreSQL"
		// Several edges share it: what is wrong with it is said at start.
		if err := s.init(ctx); err != nil {
			s.db.Close()
			return nil, err
		}
	}
	return &s, nil
}

// init creates the tables, once.
func (s *store) init(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.ready.Load() {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if s.pg {
			// Edges that start together would race on CREATE ... IF NOT
			// EXISTS (a unique violation in PostgreSQL's catalog): one at
			// a time, as certs/pgstorage.go does.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('wellknownd slidingsync schema'))`); err != nil {
				return err
			}
		}
		for _, stmt := range schema(s.pg) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating the sliding-sync store in %s: %w", s.where, err)
	}
	s.ready.Store(true)
	return nil
}

func (s *store) close() error { return s.db.Close() }

// q rewrites ? placeholders into PostgreSQL's $n.
func (s *store) q(query string) string {
	if !s.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// tx runs fn in a transaction, committed when fn returns nil.
func (s *store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
