// Package msc4186 makes raw Simplified Sliding Sync (MSC4186) requests for
// tests, against any server that serves them: Synapse natively, or the
// edge. It sends exactly what it is given and decodes what Synapse 1.160
// answers, keeping the raw body beside, so a test can compare two servers
// field by field.
package msc4186

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Path is the endpoint: MSC4186 is still served under the unstable prefix.
const Path = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// Request is a request body. pos and timeout are not in it: they travel in
// the query string (Conn.Sync puts them there).
type Request struct {
	ConnID            string                      `json:"conn_id,omitempty"`
	Lists             map[string]List             `json:"lists,omitempty"`
	RoomSubscriptions map[string]RoomSubscription `json:"room_subscriptions,omitempty"`
	Extensions        map[string]any              `json:"extensions,omitempty"`
}

// RoomSubscription says what to send of a room.
type RoomSubscription struct {
	// RequiredState holds [type, state_key] pairs; "*", "$LAZY" and "$ME"
	// are the wildcards. Synapse requires the field (400 M_MISSING_PARAM
	// without it): nil is sent as [].
	RequiredState [][2]string `json:"required_state"`
	TimelineLimit int         `json:"timeline_limit"`
}

// List is a window over the rooms that match Filters.
type List struct {
	Ranges [][2]int `json:"ranges"`
	RoomSubscription
	Filters map[string]any `json:"filters,omitempty"`
}

// Response is an answer.
type Response struct {
	Pos        string                     `json:"pos"`
	Lists      map[string]ListResponse    `json:"lists"`
	Rooms      map[string]Room            `json:"rooms"`
	Extensions map[string]json.RawMessage `json:"extensions"`
	// Raw is the body as received.
	Raw json.RawMessage `json:"-"`
}

// ListResponse is a list's part of an answer.
type ListResponse struct {
	Count int  `json:"count"`
	Ops   []Op `json:"ops,omitempty"`
}

// Op is a list operation: Synapse sends one SYNC op per range, with the
// range's room IDs in order.
type Op struct {
	Op      string   `json:"op"`
	Range   []int    `json:"range,omitempty"`
	RoomIDs []string `json:"room_ids,omitempty"`
}

// Room is a room's part of an answer.
type Room struct {
	Name              string  `json:"name,omitempty"`
	Initial           bool    `json:"initial,omitempty"`
	IsDM              bool    `json:"is_dm,omitempty"`
	Limited           bool    `json:"limited,omitempty"`
	Timeline          []Event `json:"timeline,omitempty"`
	RequiredState     []Event `json:"required_state,omitempty"`
	InviteState       []Event `json:"invite_state,omitempty"`
	PrevBatch         string  `json:"prev_batch,omitempty"`
	NumLive           int     `json:"num_live"`
	BumpStamp         int64   `json:"bump_stamp,omitempty"`
	NotificationCount int     `json:"notification_count"`
	HighlightCount    int     `json:"highlight_count"`
	JoinedCount       int     `json:"joined_count,omitempty"`
	InvitedCount      int     `json:"invited_count,omitempty"`
	Heroes            []Hero  `json:"heroes,omitempty"`
}

// Hero is one of the members a room without a name is named after.
type Hero struct {
	UserID      string `json:"user_id"`
	Displayname string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// Event is a timeline, state or stripped state event.
type Event struct {
	EventID  string         `json:"event_id,omitempty"`
	Type     string         `json:"type"`
	Sender   string         `json:"sender"`
	StateKey *string        `json:"state_key,omitempty"`
	Content  map[string]any `json:"content"`
}

// Body is the event's content.body, or "".
func (e Event) Body() string {
	b, _ := e.Content["body"].(string)
	return b
}

// Order is the room IDs of a list's ops in order. Synapse sorts them by
// recency only when the ranges do not cover the whole list: a single range
// from 0 to the end or beyond comes in no useful order (it skips the sort),
// and clients order by bump_stamp (ByBumpStamp).
func (l ListResponse) Order() []string {
	var ids []string
	for _, op := range l.Ops {
		ids = append(ids, op.RoomIDs...)
	}
	return ids
}

// ByBumpStamp is the answer's rooms, the highest bump_stamp (the most
// recently active) first, as clients order their room list.
func (r *Response) ByBumpStamp() []string {
	ids := make([]string, 0, len(r.Rooms))
	for id := range r.Rooms {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := r.Rooms[ids[i]].BumpStamp, r.Rooms[ids[j]].BumpStamp
		if a != b {
			return a > b
		}
		return ids[i] < ids[j]
	})
	return ids
}

// withRequiredState is req with every nil required_state made empty, in
// copies of its maps: the caller's request is reused for the next poll.
func withRequiredState(req Request) Request {
	lists := make(map[string]List, len(req.Lists))
	for k, l := range req.Lists {
		if l.RequiredState == nil {
			l.RequiredState = [][2]string{}
		}
		lists[k] = l
	}
	subs := make(map[string]RoomSubscription, len(req.RoomSubscriptions))
	for k, s := range req.RoomSubscriptions {
		if s.RequiredState == nil {
			s.RequiredState = [][2]string{}
		}
		subs[k] = s
	}
	req.Lists, req.RoomSubscriptions = lists, subs
	return req
}

// Error is an answer other than 200.
type Error struct {
	Status  int
	Errcode string `json:"errcode"`
	Message string `json:"error"`
	Body    []byte
}

func (e *Error) Error() string {
	return fmt.Sprintf("sliding sync answered %d %s: %s", e.Status, e.Errcode, strings.TrimSpace(e.Message))
}

// Conn is one sliding sync connection: the pos of its last answer is sent
// with the next request.
type Conn struct {
	// HTTP is the client to use; default one with a timeout of the long
	// poll plus 30 s.
	HTTP    *http.Client
	BaseURL string
	Token   string
	// Pos is the last answer's pos; "" starts the connection afresh.
	Pos string
}

// Sync sends req with c.Pos and timeout (a long poll: the server may wait
// that long for something new) and, on success, keeps the answer's pos.
func (c *Conn) Sync(ctx context.Context, timeout time.Duration, req Request) (*Response, error) {
	body, err := json.Marshal(withRequiredState(req))
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if c.Pos != "" {
		q.Set("pos", c.Pos)
	}
	if timeout > 0 {
		q.Set("timeout", strconv.FormatInt(timeout.Milliseconds(), 10))
	}
	u := strings.TrimSuffix(c.BaseURL, "/") + Path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: timeout + 30*time.Second}
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("sliding sync: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("sliding sync: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Status: resp.StatusCode, Body: raw}
		json.Unmarshal(raw, e)
		return nil, e
	}
	out := &Response{Raw: raw}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("sliding sync: decoding the answer: %w\n%s", err, raw)
	}
	c.Pos = out.Pos
	return out, nil
}
