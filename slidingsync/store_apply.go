package slidingsync

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// maxTimeline bounds the events kept per room: what a client asks for a
// room's first screen, with room to spare; older ones are a /messages away.
const maxTimeline = 100

// errSinceMoved means another edge advanced the device's poll position
// after this poller read it: the lease changed hands, and this poller's
// batch must not be applied twice.
var errSinceMoved = errors.New("the device's v2 position moved under this poller")

// deviceRow finds or creates the device's row.
func (s *store) device(ctx context.Context, userID, deviceID string) (dev int64, err error) {
	err = s.db.QueryRowContext(ctx, s.q(`SELECT dev FROM slidingsync_devices WHERE user_id = ? AND device_id = ?`), userID, deviceID).Scan(&dev)
	if err == nil {
		return dev, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("reading the device: %w", err)
	}
	// lease_until starts now: a device just added is not idle for the sweep.
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO slidingsync_devices (user_id, device_id, lease_until) VALUES (?, ?, ?) ON CONFLICT (user_id, device_id) DO NOTHING`), userID, deviceID, time.Now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("adding the device: %w", err)
	}
	err = s.db.QueryRowContext(ctx, s.q(`SELECT dev FROM slidingsync_devices WHERE user_id = ? AND device_id = ?`), userID, deviceID).Scan(&dev)
	if err != nil {
		return 0, fmt.Errorf("reading the device: %w", err)
	}
	return dev, nil
}

// devicePos is a device's v2 position and batch count.
func (s *store) devicePos(ctx context.Context, dev int64) (since string, pos, nid int64, err error) {
	err = s.db.QueryRowContext(ctx, s.q(`SELECT since, pos, nid FROM slidingsync_devices WHERE dev = ?`), dev).Scan(&since, &pos, &nid)
	return
}

// lease takes or renews the right to poll dev until the given time: it is
// taken when nobody holds it, this edge holds it, or the holder let it
// lapse. It reports whether owner holds it now.
func (s *store) lease(ctx context.Context, dev int64, owner string, until time.Time) (bool, error) {
	now := time.Now().UnixMilli()
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE slidingsync_devices SET owner = ?, lease_until = ?
		WHERE dev = ? AND (owner = ? OR owner = '' OR lease_until < ?)`), owner, until.UnixMilli(), dev, owner, now)
	if err != nil {
		return false, fmt.Errorf("taking the poll lease: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// release gives the lease up, so another edge may poll at once.
// lease_until stays: it is when the device was last polled, which the
// sweep goes by.
func (s *store) release(ctx context.Context, dev int64, owner string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE slidingsync_devices SET owner = '' WHERE dev = ? AND owner = ?`), dev, owner)
	return err
}

// deviceTables are the tables holding a device's data, besides
// slidingsync_devices itself.
var deviceTables = []string{"slidingsync_rooms", "slidingsync_state", "slidingsync_timeline", "slidingsync_account_data",
	"slidingsync_ephemeral", "slidingsync_to_device", "slidingsync_device_lists", "slidingsync_connections"}

// forget deletes everything stored for a device: its token was revoked
// (a logout), or it has not synced for longer than the sweep keeps.
func (s *store) forget(ctx context.Context, dev int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, t := range append(deviceTables, "slidingsync_devices") {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+t+` WHERE dev = ?`), dev); err != nil {
				return fmt.Errorf("forgetting a device: %w", err)
			}
		}
		return nil
	})
}

// stale lists devices nobody has polled since before.
func (s *store) stale(ctx context.Context, before time.Time) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT dev FROM slidingsync_devices WHERE owner = '' AND lease_until < ?`), before.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var dev int64
		if err := rows.Scan(&dev); err != nil {
			return nil, err
		}
		out = append(out, dev)
	}
	return out, rows.Err()
}

// apply stores one v2 answer, polled from since, in one transaction: the
// new since is committed with the to-device messages it acknowledges, so
// none is lost when the edge stops between two polls. It returns the
// device's new pos.
func (s *store) apply(ctx context.Context, dev int64, since string, r *v2Sync) (int64, error) {
	var pos int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		a := applier{s: s, tx: tx, ctx: ctx, dev: dev, stmts: map[string]*sql.Stmt{}}
		var stored string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT since, pos, nid, user_id FROM slidingsync_devices WHERE dev = ?`), dev).Scan(&stored, &a.pos, &a.nid, &a.userID); err != nil {
			return err
		}
		if stored != since {
			return errSinceMoved
		}
		a.pos++
		a.initial = since == ""
		if err := a.apply(r); err != nil {
			return err
		}
		pos = a.pos
		_, err := tx.ExecContext(ctx, s.q(`UPDATE slidingsync_devices SET since = ?, pos = ?, nid = ? WHERE dev = ?`), r.NextBatch, a.pos, a.nid, dev)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storing a v2 sync: %w", err)
	}
	return pos, nil
}

// applier is one apply's transaction and counters.
type applier struct {
	s       *store
	tx      *sql.Tx
	ctx     context.Context
	dev     int64
	userID  string
	pos     int64
	nid     int64
	initial bool
	stmts   map[string]*sql.Stmt
}

// exec runs a statement of the batch. Each is prepared once per batch:
// a first sync of a few hundred rooms runs the same few thousand times.
func (a *applier) exec(query string, args ...any) error {
	st := a.stmts[query]
	if st == nil {
		var err error
		if st, err = a.tx.PrepareContext(a.ctx, a.s.q(query)); err != nil {
			return err
		}
		a.stmts[query] = st
	}
	_, err := st.ExecContext(a.ctx, args...)
	return err
}

func (a *applier) apply(r *v2Sync) error {
	for _, raw := range r.AccountData.Events {
		if err := a.accountData("", raw); err != nil {
			return err
		}
	}
	if len(r.ToDevice.Events) > 0 {
		var seq int64
		if err := a.tx.QueryRowContext(a.ctx, a.s.q(`SELECT to_device_seq FROM slidingsync_devices WHERE dev = ?`), a.dev).Scan(&seq); err != nil {
			return err
		}
		for _, raw := range r.ToDevice.Events {
			seq++
			if err := a.exec(`INSERT INTO slidingsync_to_device (dev, seq, event) VALUES (?, ?, ?)`, a.dev, seq, string(raw)); err != nil {
				return err
			}
		}
		if err := a.exec(`UPDATE slidingsync_devices SET to_device_seq = ? WHERE dev = ?`, seq, a.dev); err != nil {
			return err
		}
	}
	for _, list := range []struct {
		users []string
		left  int
	}{{r.DeviceLists.Changed, 0}, {r.DeviceLists.Left, 1}} {
		for _, u := range list.users {
			if err := a.exec(`INSERT INTO slidingsync_device_lists (dev, user_id, left_room, changed) VALUES (?, ?, ?, ?)
				ON CONFLICT (dev, user_id) DO UPDATE SET left_room = excluded.left_room, changed = excluded.changed`, a.dev, u, list.left, a.pos); err != nil {
				return err
			}
		}
	}
	if r.OTKCounts != nil {
		b, _ := json.Marshal(r.OTKCounts)
		if err := a.exec(`UPDATE slidingsync_devices SET otk_counts = ? WHERE dev = ?`, string(b), a.dev); err != nil {
			return err
		}
	}
	fallback := r.FallbackTypes
	if fallback == nil {
		fallback = r.FallbackTypes2
	}
	if fallback != nil {
		b, _ := json.Marshal(*fallback)
		if err := a.exec(`UPDATE slidingsync_devices SET fallback_types = ? WHERE dev = ?`, string(b), a.dev); err != nil {
			return err
		}
	}
	for id, room := range r.Rooms.Join {
		if err := a.room(id, "join", &room); err != nil {
			return fmt.Errorf("room %s: %w", id, err)
		}
	}
	for id, room := range r.Rooms.Leave {
		if err := a.room(id, "leave", &room); err != nil {
			return fmt.Errorf("room %s: %w", id, err)
		}
	}
	for id, room := range r.Rooms.Invite {
		if err := a.stripped(id, "invite", room.InviteState.Events); err != nil {
			return fmt.Errorf("invite %s: %w", id, err)
		}
	}
	for id, room := range r.Rooms.Knock {
		if err := a.stripped(id, "knock", room.KnockState.Events); err != nil {
			return fmt.Errorf("knock %s: %w", id, err)
		}
	}
	return nil
}

func (a *applier) accountData(roomID string, raw json.RawMessage) error {
	e, ok := parseEvent(raw)
	if !ok {
		return nil
	}
	if err := a.exec(`INSERT INTO slidingsync_account_data (dev, room_id, type, event, changed) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (dev, room_id, type) DO UPDATE SET event = excluded.event, changed = excluded.changed`, a.dev, roomID, e.Type, string(raw), a.pos); err != nil {
		return err
	}
	if roomID != "" && e.Type == "m.tag" {
		var c struct {
			Tags map[string]json.RawMessage `json:"tags"`
		}
		json.Unmarshal(e.Content, &c)
		tags := make([]string, 0, len(c.Tags))
		for t := range c.Tags {
			tags = append(tags, t)
		}
		b, _ := json.Marshal(tags)
		return a.exec(`UPDATE slidingsync_rooms SET tags = ? WHERE dev = ? AND room_id = ?`, string(b), a.dev, roomID)
	}
	return nil
}

// touch makes sure the room has a row with this membership, and marks it
// changed at this pos.
func (a *applier) touch(roomID, membership string) error {
	return a.exec(`INSERT INTO slidingsync_rooms (dev, room_id, membership, membership_pos, changed) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (dev, room_id) DO UPDATE SET changed = excluded.changed,
			membership_pos = CASE WHEN slidingsync_rooms.membership = excluded.membership THEN slidingsync_rooms.membership_pos ELSE excluded.membership_pos END,
			membership = excluded.membership`, a.dev, roomID, membership, a.pos, a.pos)
}

func (a *applier) stripped(roomID, membership string, events []json.RawMessage) error {
	if err := a.touch(roomID, membership); err != nil {
		return err
	}
	b, _ := json.Marshal(events)
	if events == nil {
		b = []byte("[]")
	}
	// An invite has no timeline: it takes its place in the list by when
	// it was sent (the newest stripped event's time, which Dendrite gives
	// the invite itself), else by when it arrived here.
	bump := int64(0)
	for _, raw := range events {
		if e, ok := parseEvent(raw); ok {
			bump = max(bump, e.TS)
		}
	}
	if bump == 0 {
		bump = time.Now().UnixMilli()
	}
	if err := a.exec(`UPDATE slidingsync_rooms SET invite_state = ?, bump_stamp = ? WHERE dev = ? AND room_id = ?`,
		string(b), bump, a.dev, roomID); err != nil {
		return err
	}
	for _, raw := range events {
		if e, ok := parseEvent(raw); ok {
			if err := a.index(roomID, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *applier) state(roomID string, e envelope, raw json.RawMessage) error {
	if err := a.exec(`INSERT INTO slidingsync_state (dev, room_id, type, state_key, event, changed) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (dev, room_id, type, state_key) DO UPDATE SET event = excluded.event, changed = excluded.changed`,
		a.dev, roomID, e.Type, *e.StateKey, string(raw), a.pos); err != nil {
		return err
	}
	return a.index(roomID, e)
}

// index keeps the room's columns that lists filter on in step with its
// state (or its invite's stripped state).
func (a *applier) index(roomID string, e envelope) error {
	if e.StateKey == nil {
		return nil
	}
	if *e.StateKey != "" {
		if e.Type == "m.room.member" && *e.StateKey == a.userID {
			var c struct {
				Direct bool `json:"is_direct"`
			}
			json.Unmarshal(e.Content, &c)
			if c.Direct {
				return a.exec(`UPDATE slidingsync_rooms SET invite_direct = 1 WHERE dev = ? AND room_id = ?`, a.dev, roomID)
			}
		}
		return nil
	}
	var c struct {
		Name string  `json:"name"`
		URL  string  `json:"url"`
		Type *string `json:"type"`
	}
	json.Unmarshal(e.Content, &c)
	switch e.Type {
	case "m.room.create":
		return a.exec(`UPDATE slidingsync_rooms SET room_type = ? WHERE dev = ? AND room_id = ?`, c.Type, a.dev, roomID)
	case "m.room.encryption":
		return a.exec(`UPDATE slidingsync_rooms SET encrypted = 1 WHERE dev = ? AND room_id = ?`, a.dev, roomID)
	case "m.room.name":
		return a.exec(`UPDATE slidingsync_rooms SET name = ? WHERE dev = ? AND room_id = ?`, c.Name, a.dev, roomID)
	case "m.room.avatar":
		return a.exec(`UPDATE slidingsync_rooms SET avatar = ? WHERE dev = ? AND room_id = ?`, c.URL, a.dev, roomID)
	}
	return nil
}

func (a *applier) room(roomID, membership string, r *v2JoinedRoom) error {
	if err := a.touch(roomID, membership); err != nil {
		return err
	}
	for _, raw := range r.State.Events {
		if e, ok := parseEvent(raw); ok && e.StateKey != nil {
			if err := a.state(roomID, e, raw); err != nil {
				return err
			}
		}
	}
	if err := a.timeline(roomID, r); err != nil {
		return err
	}
	for _, raw := range r.AccountData.Events {
		if err := a.accountData(roomID, raw); err != nil {
			return err
		}
	}
	for _, raw := range r.Ephemeral.Events {
		if err := a.ephemeral(roomID, raw); err != nil {
			return err
		}
	}
	if s := r.Summary; s.Heroes != nil || s.Joined != nil || s.Invited != nil {
		if s.Heroes != nil {
			b, _ := json.Marshal(*s.Heroes)
			if err := a.exec(`UPDATE slidingsync_rooms SET heroes = ? WHERE dev = ? AND room_id = ?`, string(b), a.dev, roomID); err != nil {
				return err
			}
		}
		if s.Joined != nil {
			if err := a.exec(`UPDATE slidingsync_rooms SET joined_count = ? WHERE dev = ? AND room_id = ?`, *s.Joined, a.dev, roomID); err != nil {
				return err
			}
		}
		if s.Invited != nil {
			if err := a.exec(`UPDATE slidingsync_rooms SET invited_count = ? WHERE dev = ? AND room_id = ?`, *s.Invited, a.dev, roomID); err != nil {
				return err
			}
		}
	}
	if u := r.Unread; u != nil {
		if err := a.exec(`UPDATE slidingsync_rooms SET notification_count = ?, highlight_count = ? WHERE dev = ? AND room_id = ?`,
			u.Notifications, u.Highlights, a.dev, roomID); err != nil {
			return err
		}
	}
	return nil
}

// timeline appends a v2 timeline chunk. A limited chunk has a gap before
// it: what was stored is dropped, and the chunk's prev_batch is where
// pagination resumes.
func (a *applier) timeline(roomID string, r *v2JoinedRoom) error {
	tl := r.Timeline
	if len(tl.Events) == 0 {
		return nil
	}
	var maxOrd sql.NullInt64
	if err := a.tx.QueryRowContext(a.ctx, a.s.q(`SELECT MAX(ord) FROM slidingsync_timeline WHERE dev = ? AND room_id = ?`), a.dev, roomID).Scan(&maxOrd); err != nil {
		return err
	}
	ord := maxOrd.Int64
	fresh := !maxOrd.Valid || tl.Limited
	if tl.Limited && maxOrd.Valid {
		if err := a.exec(`DELETE FROM slidingsync_timeline WHERE dev = ? AND room_id = ?`, a.dev, roomID); err != nil {
			return err
		}
	}
	if fresh {
		if err := a.exec(`UPDATE slidingsync_rooms SET prev_batch = ?, complete = 0 WHERE dev = ? AND room_id = ?`, tl.PrevBatch, a.dev, roomID); err != nil {
			return err
		}
	}
	if tl.Limited {
		// Whoever saw this room before the gap must be told of it.
		if err := a.exec(`UPDATE slidingsync_rooms SET gap_nid = ? WHERE dev = ? AND room_id = ?`, a.nid+1, a.dev, roomID); err != nil {
			return err
		}
	}
	// A room new to this device after its first sync (joined, or an
	// invite accepted) comes with history: what precedes the user's own
	// membership event in that chunk was never live, and is stored as
	// backfill is, with nid 0.
	history := -1
	if !maxOrd.Valid && !a.initial {
		for i, raw := range tl.Events {
			if e, ok := parseEvent(raw); ok && e.Type == "m.room.member" && e.StateKey != nil && *e.StateKey == a.userID {
				history = i
			}
		}
	}
	var bump int64
	for i, raw := range tl.Events {
		e, ok := parseEvent(raw)
		if !ok {
			continue
		}
		ord++
		nid := int64(0)
		if i >= history {
			a.nid++
			nid = a.nid
		}
		batch := ""
		if i == 0 {
			batch = tl.PrevBatch
		}
		if err := a.exec(`INSERT INTO slidingsync_timeline (dev, room_id, ord, nid, event_id, batch, event) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (dev, room_id, ord) DO NOTHING`, a.dev, roomID, ord, nid, e.EventID, batch, string(raw)); err != nil {
			return err
		}
		if e.StateKey != nil {
			if err := a.state(roomID, e, raw); err != nil {
				return err
			}
		}
		if e.Type == "m.room.create" && fresh && i == 0 {
			if err := a.exec(`UPDATE slidingsync_rooms SET complete = 1 WHERE dev = ? AND room_id = ?`, a.dev, roomID); err != nil {
				return err
			}
		}
		if isBump(e.Type) && e.TS > bump {
			bump = e.TS
		}
	}
	if bump == 0 && fresh {
		// A room whose last events are all churn still needs a place in
		// the list: its newest event's time.
		if e, ok := parseEvent(tl.Events[len(tl.Events)-1]); ok {
			bump = e.TS
		}
	}
	if bump > 0 {
		if err := a.exec(`UPDATE slidingsync_rooms SET bump_stamp = ? WHERE dev = ? AND room_id = ? AND bump_stamp < ?`, bump, a.dev, roomID, bump); err != nil {
			return err
		}
	}
	return a.trim(roomID, ord)
}

// trim keeps at most maxTimeline events of a room, cutting at the start
// of a v2 chunk so that the room's prev_batch still paginates from exactly
// before the oldest event kept.
func (a *applier) trim(roomID string, maxOrd int64) error {
	var cut sql.NullInt64
	var batch sql.NullString
	err := a.tx.QueryRowContext(a.ctx, a.s.q(`SELECT ord, batch FROM slidingsync_timeline
		WHERE dev = ? AND room_id = ? AND batch <> '' AND ord > ? ORDER BY ord ASC LIMIT 1`), a.dev, roomID, maxOrd-maxTimeline).Scan(&cut, &batch)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var older int
	if err := a.tx.QueryRowContext(a.ctx, a.s.q(`SELECT COUNT(*) FROM slidingsync_timeline WHERE dev = ? AND room_id = ? AND ord < ?`), a.dev, roomID, cut.Int64).Scan(&older); err != nil || older == 0 {
		return err
	}
	if err := a.exec(`DELETE FROM slidingsync_timeline WHERE dev = ? AND room_id = ? AND ord < ?`, a.dev, roomID, cut.Int64); err != nil {
		return err
	}
	return a.exec(`UPDATE slidingsync_rooms SET prev_batch = ?, complete = 0 WHERE dev = ? AND room_id = ?`, batch.String, a.dev, roomID)
}

// ephemeral keeps a room's typing users as the homeserver last said, and
// its receipts merged: one per user, receipt type and thread.
func (a *applier) ephemeral(roomID string, raw json.RawMessage) error {
	e, ok := parseEvent(raw)
	if !ok {
		return nil
	}
	content := e.Content
	switch e.Type {
	case "m.typing":
	case "m.receipt":
		var old string
		err := a.tx.QueryRowContext(a.ctx, a.s.q(`SELECT content FROM slidingsync_ephemeral WHERE dev = ? AND room_id = ? AND type = 'm.receipt'`), a.dev, roomID).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		merged, err := mergeReceipts(json.RawMessage(old), e.Content)
		if err != nil {
			return nil // a malformed receipt is dropped, not the whole batch
		}
		content = merged
	default:
		return nil
	}
	return a.exec(`INSERT INTO slidingsync_ephemeral (dev, room_id, type, content, changed) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (dev, room_id, type) DO UPDATE SET content = excluded.content, changed = excluded.changed`,
		a.dev, roomID, e.Type, string(content), a.pos)
}

// receipts is m.receipt content: event ID → receipt type → user → data.
type receipts map[string]map[string]map[string]json.RawMessage

// mergeReceipts adds the receipts of update to old, dropping any earlier
// receipt of the same user, type and thread: a room's receipts stay one
// per reader, however long the room lives.
func mergeReceipts(old, update json.RawMessage) (json.RawMessage, error) {
	merged := receipts{}
	if len(old) > 0 {
		if err := json.Unmarshal(old, &merged); err != nil {
			merged = receipts{}
		}
	}
	var add receipts
	if err := json.Unmarshal(update, &add); err != nil {
		return nil, err
	}
	type key struct{ typ, user, thread string }
	fresh := map[key]bool{}
	for _, types := range add {
		for typ, users := range types {
			for user, data := range users {
				fresh[key{typ, user, threadOf(data)}] = true
			}
		}
	}
	for eventID, types := range merged {
		for typ, users := range types {
			for user, data := range users {
				if fresh[key{typ, user, threadOf(data)}] {
					delete(users, user)
				}
			}
			if len(users) == 0 {
				delete(types, typ)
			}
		}
		if len(types) == 0 {
			delete(merged, eventID)
		}
	}
	for eventID, types := range add {
		if merged[eventID] == nil {
			merged[eventID] = map[string]map[string]json.RawMessage{}
		}
		for typ, users := range types {
			if merged[eventID][typ] == nil {
				merged[eventID][typ] = map[string]json.RawMessage{}
			}
			for user, data := range users {
				merged[eventID][typ][user] = data
			}
		}
	}
	return json.Marshal(merged)
}

func threadOf(data json.RawMessage) string {
	var d struct {
		Thread string `json:"thread_id"`
	}
	json.Unmarshal(data, &d)
	return d.Thread
}
