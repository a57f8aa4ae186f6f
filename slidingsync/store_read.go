package slidingsync

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// roomInfo is what lists are filtered and ordered by, and the room's
// fields an answer carries.
type roomInfo struct {
	ID            string
	Membership    string
	MembershipPos int64
	Changed       int64
	Bump          int64
	Heroes        []string
	Joined        int64
	Invited       int64
	Notifications int64
	Highlights    int64
	InviteState   json.RawMessage
	PrevBatch     string
	Complete      bool
	// GapNID is the first event after the latest gap in the timeline.
	GapNID int64

	Name, Avatar string
	Encrypted    bool
	// Type is m.room.create's content.type; nil for a plain room.
	Type *string
	Tags map[string]bool
	DM   bool
}

// view is a device's stored state as of one apply: its counters and its
// rooms as they stood then.
type view struct {
	pos, nid int64
	rooms    map[string]*roomInfo
}

// maxViewReads bounds how often view reads the rooms again. Each retry
// means a poller committed meanwhile, and a poller commits once per
// homeserver answer, so a few reads always settle; the bound keeps a
// broken store from spinning a request.
const maxViewReads = 20

// view reads the device's counters and its rooms as of the same apply.
// A room's row carries no position of its own (a bump or a count is
// rewritten in place), so the rooms are read between two reads of the
// counters, and again when an apply committed in between: rooms newer
// than the counters would send a room's new bump_stamp without the event
// that moved it, since the timeline is read up to the counters' nid.
func (s *store) view(ctx context.Context, dev int64) (view, error) {
	_, pos, nid, err := s.devicePos(ctx, dev)
	if err != nil {
		return view{}, fmt.Errorf("reading its counters: %w", err)
	}
	for range maxViewReads {
		if s.testHookBeforeRooms != nil {
			s.testHookBeforeRooms()
		}
		rooms, err := s.rooms(ctx, dev)
		if err != nil {
			return view{}, err
		}
		_, pos2, nid2, err := s.devicePos(ctx, dev)
		if err != nil {
			return view{}, fmt.Errorf("reading its counters: %w", err)
		}
		if pos2 == pos {
			return view{pos: pos, nid: nid, rooms: rooms}, nil
		}
		pos, nid = pos2, nid2
	}
	return view{}, fmt.Errorf("reading the rooms: the store changed under %d reads", maxViewReads)
}

// rooms reads every room of the device with what its lists need.
func (s *store) rooms(ctx context.Context, dev int64) (map[string]*roomInfo, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT room_id, membership, membership_pos, changed, bump_stamp, heroes,
		joined_count, invited_count, notification_count, highlight_count, invite_state, prev_batch, complete, gap_nid,
		name, avatar, encrypted, room_type, tags, invite_direct
		FROM slidingsync_rooms WHERE dev = ?`), dev)
	if err != nil {
		return nil, fmt.Errorf("reading rooms: %w", err)
	}
	defer rows.Close()
	out := map[string]*roomInfo{}
	for rows.Next() {
		r := &roomInfo{}
		var heroes, invite, tags string
		var complete, encrypted, direct int64
		var typ sql.NullString
		if err := rows.Scan(&r.ID, &r.Membership, &r.MembershipPos, &r.Changed, &r.Bump, &heroes,
			&r.Joined, &r.Invited, &r.Notifications, &r.Highlights, &invite, &r.PrevBatch, &complete, &r.GapNID,
			&r.Name, &r.Avatar, &encrypted, &typ, &tags, &direct); err != nil {
			return nil, fmt.Errorf("reading rooms: %w", err)
		}
		if heroes != "[]" {
			json.Unmarshal([]byte(heroes), &r.Heroes)
		}
		if tags != "[]" {
			var list []string
			json.Unmarshal([]byte(tags), &list)
			r.Tags = map[string]bool{}
			for _, t := range list {
				r.Tags[t] = true
			}
		}
		if typ.Valid {
			r.Type = &typ.String
		}
		r.InviteState = json.RawMessage(invite)
		r.Complete = complete == 1
		r.Encrypted = encrypted == 1
		// An invite is direct when its member event says so; a joined
		// room when m.direct lists it (below), as Synapse decides.
		r.DM = direct == 1 && (r.Membership == "invite" || r.Membership == "knock")
		out[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading rooms: %w", err)
	}
	var raw string
	err = s.db.QueryRowContext(ctx, s.q(`SELECT event FROM slidingsync_account_data WHERE dev = ? AND room_id = '' AND type = 'm.direct'`), dev).Scan(&raw)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading m.direct: %w", err)
	}
	if e, ok := parseEvent(json.RawMessage(raw)); ok {
		var direct map[string][]string
		json.Unmarshal(e.Content, &direct)
		for _, ids := range direct {
			for _, rid := range ids {
				if r := out[rid]; r != nil {
					r.DM = true
				}
			}
		}
	}
	return out, nil
}

// stateEvent is one current state event.
type stateEvent struct {
	Type, StateKey string
	Raw            json.RawMessage
	Changed        int64
}

// state reads a room's current state of the given types (every type when
// types is nil), changed after since.
func (s *store) state(ctx context.Context, dev int64, roomID string, types []string, since int64) ([]stateEvent, error) {
	query := `SELECT type, state_key, event, changed FROM slidingsync_state WHERE dev = ? AND room_id = ? AND changed > ?`
	args := []any{dev, roomID, since}
	if types != nil {
		if len(types) == 0 {
			return nil, nil
		}
		query += ` AND type IN (?` + strings.Repeat(`, ?`, len(types)-1) + `)`
		for _, t := range types {
			args = append(args, t)
		}
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("reading state of %s: %w", roomID, err)
	}
	return scanState(rows)
}

// timelineEvent is one stored timeline event.
type timelineEvent struct {
	Ord, NID int64
	Batch    string
	Raw      json.RawMessage
}

// timeline reads a room's newest limit events that arrived no later
// than upTo, oldest first.
func (s *store) timeline(ctx context.Context, dev int64, roomID string, upTo int64, limit int) ([]timelineEvent, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT ord, nid, batch, event FROM slidingsync_timeline
		WHERE dev = ? AND room_id = ? AND nid <= ? ORDER BY ord DESC LIMIT ?`), dev, roomID, upTo, limit)
	if err != nil {
		return nil, fmt.Errorf("reading the timeline of %s: %w", roomID, err)
	}
	return scanTimeline(rows)
}

// timelineToken is the pagination token for the events before the one at
// ord: the batch of the chunk it belongs to (events of that chunk older
// than ord come again from /messages, and clients drop what they hold),
// or the room's prev_batch.
func (s *store) timelineToken(ctx context.Context, dev int64, roomID string, ord int64, roomPrev string) (string, error) {
	var batch string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT batch FROM slidingsync_timeline WHERE dev = ? AND room_id = ? AND ord <= ? AND batch <> ''
		ORDER BY ord DESC LIMIT 1`), dev, roomID, ord).Scan(&batch)
	if errors.Is(err, sql.ErrNoRows) {
		return roomPrev, nil
	}
	return batch, err
}

// accountData reads a room's account data ("" for global) changed after
// since and no later than upTo.
func (s *store) accountData(ctx context.Context, dev int64, roomID string, since, upTo int64) ([]json.RawMessage, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT event FROM slidingsync_account_data WHERE dev = ? AND room_id = ? AND changed > ? AND changed <= ? ORDER BY type`), dev, roomID, since, upTo)
	if err != nil {
		return nil, fmt.Errorf("reading account data: %w", err)
	}
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		out = append(out, json.RawMessage(raw))
	}
	return out, rows.Err()
}

// ephemeral reads a room's m.typing or m.receipt content changed after
// since and no later than upTo.
func (s *store) ephemeral(ctx context.Context, dev int64, roomID, typ string, since, upTo int64) (json.RawMessage, error) {
	var content string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT content FROM slidingsync_ephemeral WHERE dev = ? AND room_id = ? AND type = ? AND changed > ? AND changed <= ?`), dev, roomID, typ, since, upTo).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", typ, err)
	}
	return json.RawMessage(content), nil
}

// toDevice acknowledges the device's messages up to acked and returns the
// next ones, at most limit, with the sequence number of the last.
func (s *store) toDevice(ctx context.Context, dev, acked int64, limit int) ([]json.RawMessage, int64, error) {
	var issued int64
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT to_device_seq FROM slidingsync_devices WHERE dev = ?`), dev).Scan(&issued); err != nil {
		return nil, 0, fmt.Errorf("reading to-device messages: %w", err)
	}
	if acked > issued {
		// Acknowledging numbers not yet given would skip messages that
		// are still to come.
		return nil, 0, errBadToDeviceSince
	}
	if acked > 0 {
		if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM slidingsync_to_device WHERE dev = ? AND seq <= ?`), dev, acked); err != nil {
			return nil, 0, fmt.Errorf("acknowledging to-device messages: %w", err)
		}
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, event FROM slidingsync_to_device WHERE dev = ? AND seq > ? ORDER BY seq LIMIT ?`), dev, acked, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("reading to-device messages: %w", err)
	}
	defer rows.Close()
	var out []json.RawMessage
	last := acked
	for rows.Next() {
		var raw string
		if err := rows.Scan(&last, &raw); err != nil {
			return nil, 0, err
		}
		out = append(out, json.RawMessage(raw))
	}
	return out, last, rows.Err()
}

// errBadToDeviceSince is a since beyond what was given.
var errBadToDeviceSince = errors.New("to_device since is ahead of what was sent")

// pendingToDevice counts the messages not yet acknowledged by the device.
func (s *store) pendingToDevice(ctx context.Context, dev int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM slidingsync_to_device WHERE dev = ?`), dev).Scan(&n)
	return n, err
}

// deviceLists reads the users whose devices changed, or who left every
// room shared with this user, after since and no later than upTo.
func (s *store) deviceLists(ctx context.Context, dev, since, upTo int64) (changed, left []string, err error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT user_id, left_room FROM slidingsync_device_lists WHERE dev = ? AND changed > ? AND changed <= ? ORDER BY user_id`), dev, since, upTo)
	if err != nil {
		return nil, nil, fmt.Errorf("reading device lists: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		var l int
		if err := rows.Scan(&u, &l); err != nil {
			return nil, nil, err
		}
		if l == 1 {
			left = append(left, u)
		} else {
			changed = append(changed, u)
		}
	}
	return changed, left, rows.Err()
}

// keys reads the device's one-time key counts and unused fallback key types.
func (s *store) keys(ctx context.Context, dev int64) (otk, fallback json.RawMessage, err error) {
	var o, f string
	err = s.db.QueryRowContext(ctx, s.q(`SELECT otk_counts, fallback_types FROM slidingsync_devices WHERE dev = ?`), dev).Scan(&o, &f)
	return json.RawMessage(o), json.RawMessage(f), err
}

// connection reads a connection's state at position n; nil when it is
// not kept (never existed, too old, or another device's).
func (s *store) connection(ctx context.Context, dev int64, connID string, n int64) (gen string, state []byte, err error) {
	err = s.db.QueryRowContext(ctx, s.q(`SELECT gen, state FROM slidingsync_connections WHERE dev = ? AND conn_id = ? AND n = ?`), dev, connID, n).Scan(&gen, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, nil
	}
	return gen, state, err
}

// keepPositions is how many positions of a connection are kept: the one
// the client holds and the one before, which it may retry.
const keepPositions = 3

// maxConnections bounds a device's connections (conn_id values).
const maxConnections = 8

// saveConnection stores a connection's state at position n and forgets
// positions that no client can still hold. gen identifies one life of the
// connection: a new connection under the same conn_id starts a new one.
func (s *store) saveConnection(ctx context.Context, dev int64, connID string, n int64, gen string, state []byte, now int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if n == 1 {
			// A fresh start of this conn_id: its old positions are void.
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM slidingsync_connections WHERE dev = ? AND conn_id = ?`), dev, connID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO slidingsync_connections (dev, conn_id, n, gen, state, created) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (dev, conn_id, n) DO UPDATE SET gen = excluded.gen, state = excluded.state, created = excluded.created`), dev, connID, n, gen, state, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM slidingsync_connections WHERE dev = ? AND conn_id = ? AND n <= ?`), dev, connID, n-keepPositions); err != nil {
			return err
		}
		// Past maxConnections, the connection used least recently goes.
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM slidingsync_connections WHERE dev = ? AND conn_id IN (
			SELECT conn_id FROM slidingsync_connections WHERE dev = ? GROUP BY conn_id ORDER BY MAX(created) DESC `+s.limitAll()+` OFFSET ?)`), dev, dev, maxConnections)
		return err
	})
}

// limitAll is "no limit", which an OFFSET needs before it in SQLite.
func (s *store) limitAll() string {
	if s.pg {
		return "LIMIT ALL"
	}
	return "LIMIT -1"
}

// stateKeys reads a room's current state events of one type and the
// given keys (members of a timeline's senders, the heroes).
func (s *store) stateKeys(ctx context.Context, dev int64, roomID, typ string, keys []string) ([]stateEvent, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	args := []any{dev, roomID, typ}
	for _, k := range keys {
		args = append(args, k)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT type, state_key, event, changed FROM slidingsync_state WHERE dev = ? AND room_id = ? AND type = ?
		AND state_key IN (?`+strings.Repeat(`, ?`, len(keys)-1)+`)`), args...)
	if err != nil {
		return nil, fmt.Errorf("reading state of %s: %w", roomID, err)
	}
	return scanState(rows)
}

// timelineSince reads a room's events that arrived after nid (and no
// later than upTo), the newest limit+1 of them, oldest first: one more
// than asked tells the caller there is a gap.
func (s *store) timelineSince(ctx context.Context, dev int64, roomID string, nid, upTo int64, limit int) ([]timelineEvent, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT ord, nid, batch, event FROM slidingsync_timeline
		WHERE dev = ? AND room_id = ? AND nid > ? AND nid <= ? ORDER BY ord DESC LIMIT ?`), dev, roomID, nid, upTo, limit+1)
	if err != nil {
		return nil, fmt.Errorf("reading the timeline of %s: %w", roomID, err)
	}
	return scanTimeline(rows)
}

// scanTimeline reads timeline rows taken newest first, and returns them
// oldest first.
func scanTimeline(rows *sql.Rows) ([]timelineEvent, error) {
	defer rows.Close()
	var out []timelineEvent
	for rows.Next() {
		var e timelineEvent
		var raw string
		if err := rows.Scan(&e.Ord, &e.NID, &e.Batch, &raw); err != nil {
			return nil, err
		}
		e.Raw = json.RawMessage(raw)
		out = append(out, e)
	}
	slices.Reverse(out)
	return out, rows.Err()
}

// scanState reads state rows: type, state_key, event, changed.
func scanState(rows *sql.Rows) ([]stateEvent, error) {
	defer rows.Close()
	var out []stateEvent
	for rows.Next() {
		var e stateEvent
		var raw string
		if err := rows.Scan(&e.Type, &e.StateKey, &raw, &e.Changed); err != nil {
			return nil, err
		}
		e.Raw = json.RawMessage(raw)
		out = append(out, e)
	}
	return out, rows.Err()
}
