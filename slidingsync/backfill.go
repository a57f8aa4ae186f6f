package slidingsync

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
)

// backfill fetches up to n events older than a room's stored timeline
// from /messages, with the device's own token, and stores them: a client
// that asks for more history than the v2 sync gave gets it in the same
// answer. It returns how many it stored.
func (s *Service) backfill(ctx context.Context, d *device, r *roomInfo, n int) (int, error) {
	if r.PrevBatch == "" || n <= 0 {
		return 0, nil
	}
	d.mu.Lock()
	token := d.token
	d.mu.Unlock()
	q := url.Values{"dir": {"b"}, "from": {r.PrevBatch}, "limit": {strconv.Itoa(n)}}
	resp, err := s.call(ctx, token, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(r.ID)+"/messages?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, 16<<20)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, upstreamError(resp.StatusCode, body)
	}
	var page struct {
		Chunk []json.RawMessage `json:"chunk"`
		End   string            `json:"end"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return 0, err
	}
	return s.st.prepend(ctx, d.dev, r.ID, r.PrevBatch, page.Chunk, page.End, len(page.Chunk) < n || page.End == "")
}

// prepend stores events older than a room's timeline (newest first, as
// /messages gives them), if the room's timeline still starts where from
// said: the poller may have replaced it meanwhile.
func (s *store) prepend(ctx context.Context, dev int64, roomID, from string, events []json.RawMessage, end string, complete bool) (int, error) {
	stored := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var prev string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT prev_batch FROM slidingsync_rooms WHERE dev = ? AND room_id = ?`), dev, roomID).Scan(&prev); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		if prev != from {
			return nil
		}
		var minOrd sql.NullInt64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT MIN(ord) FROM slidingsync_timeline WHERE dev = ? AND room_id = ?`), dev, roomID).Scan(&minOrd); err != nil {
			return err
		}
		ord := minOrd.Int64
		reachedCreate := false
		for i, raw := range events {
			e, ok := parseEvent(raw)
			if !ok {
				continue
			}
			ord--
			batch := ""
			if i == len(events)-1 {
				batch = end
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO slidingsync_timeline (dev, room_id, ord, nid, event_id, batch, event) VALUES (?, ?, ?, 0, ?, ?, ?)
				ON CONFLICT (dev, room_id, ord) DO NOTHING`), dev, roomID, ord, e.EventID, batch, string(raw)); err != nil {
				return err
			}
			stored++
			reachedCreate = reachedCreate || e.Type == "m.room.create"
		}
		done := 0
		if complete || reachedCreate {
			done = 1
		}
		_, err := tx.ExecContext(ctx, s.q(`UPDATE slidingsync_rooms SET prev_batch = ?, complete = ? WHERE dev = ? AND room_id = ?`), end, done, dev, roomID)
		return err
	})
	return stored, err
}
