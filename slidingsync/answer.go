package slidingsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// response is an MSC4186 answer.
type response struct {
	Pos        string                   `json:"pos"`
	Lists      map[string]listResponse  `json:"lists"`
	Rooms      map[string]*roomResponse `json:"rooms"`
	Extensions map[string]any           `json:"extensions"`
}

type listResponse struct {
	Count int      `json:"count"`
	Ops   []listOp `json:"ops,omitempty"`
}

// listOp is a SYNC of one range: the room IDs at those positions.
// matrix-js-sdk 37 reads lists this way; Element X orders rooms by
// bump_stamp itself and reads only count.
type listOp struct {
	Op      string   `json:"op"`
	Range   [2]int   `json:"range"`
	RoomIDs []string `json:"room_ids"`
}

type hero struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

type roomResponse struct {
	Name              string            `json:"name,omitempty"`
	Avatar            string            `json:"avatar,omitempty"`
	Heroes            []hero            `json:"heroes,omitempty"`
	IsDM              bool              `json:"is_dm,omitempty"`
	Initial           bool              `json:"initial,omitempty"`
	RequiredState     []json.RawMessage `json:"required_state,omitempty"`
	Timeline          []json.RawMessage `json:"timeline,omitempty"`
	PrevBatch         string            `json:"prev_batch,omitempty"`
	Limited           bool              `json:"limited,omitempty"`
	Expanded          bool              `json:"unstable_expanded_timeline,omitempty"`
	NumLive           int               `json:"num_live,omitempty"`
	JoinedCount       *int64            `json:"joined_count,omitempty"`
	InvitedCount      *int64            `json:"invited_count,omitempty"`
	NotificationCount int64             `json:"notification_count"`
	HighlightCount    int64             `json:"highlight_count"`
	BumpStamp         int64             `json:"bump_stamp,omitempty"`
	InviteState       json.RawMessage   `json:"invite_state,omitempty"`
}

// connState is what a connection's client holds at one position: saved
// with the position, so the next request with it sends only what is new.
type connState struct {
	// Pos and NID are the device's batch and event counters this answer
	// reflects: anything stored after them is new to the client.
	Pos int64 `json:"p"`
	NID int64 `json:"t"`
	// Rooms are the rooms the client has been sent, and how.
	Rooms map[string]*sentRoom `json:"r"`
	// Lists are digests of each list's count and windows as last sent.
	Lists map[string]string `json:"l"`
	// Keys is a digest of the one-time key counts last sent.
	Keys string `json:"k"`
}

type sentRoom struct {
	Pos int64 `json:"p"`
	NID int64 `json:"t"`
	// State is the required_state the room was sent with.
	State string `json:"s"`
	// Membership is the membership it was sent with: a joined invite is
	// a new room to the client.
	Membership string `json:"m"`
	// Sum is a digest of its name, avatar, heroes and counts.
	Sum string `json:"h"`
	// Limit is the timeline_limit it was last sent with: a larger one
	// sends the room's timeline again, longer.
	Limit int `json:"n,omitempty"`
}

// answer computes the answer to req for a client at prev (nil on a new
// connection), with the device's state as stored at v. It reports
// whether the answer carries anything the client lacks.
func (s *Service) answer(ctx context.Context, d *device, req *request, prev *connState, v view) (*response, *connState, bool, error) {
	rooms, pos, nid := v.rooms, v.pos, v.nid
	next := &connState{Pos: pos, NID: nid, Rooms: map[string]*sentRoom{}, Lists: map[string]string{}}
	fresh := prev == nil
	if fresh {
		prev = &connState{Rooms: map[string]*sentRoom{}, Lists: map[string]string{}}
	}
	for id, r := range prev.Rooms {
		next.Rooms[id] = r
	}
	resp := &response{Lists: map[string]listResponse{}, Rooms: map[string]*roomResponse{}, Extensions: map[string]any{}}
	changed := false

	// The rooms a list can show: those the user is in or asked into.
	var listed []*roomInfo
	for _, r := range rooms {
		switch r.Membership {
		case "join", "invite", "knock":
			listed = append(listed, r)
		}
	}
	// Most recent activity first; the room ID breaks ties so that the
	// order is the same on every edge and every request.
	slices.SortFunc(listed, func(a, b *roomInfo) int {
		if a.Bump != b.Bump {
			if a.Bump > b.Bump {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	want := map[string]roomConfig{}
	for name, l := range req.Lists {
		var matching []*roomInfo
		for _, r := range listed {
			if l.Filters.match(r) {
				matching = append(matching, r)
			}
		}
		lr := listResponse{Count: len(matching)}
		for _, rg := range l.Ranges {
			op := listOp{Op: "SYNC", Range: rg, RoomIDs: []string{}}
			for i := rg[0]; i <= rg[1] && i < len(matching); i++ {
				id := matching[i].ID
				op.RoomIDs = append(op.RoomIDs, id)
				want[id] = want[id].merge(l.roomConfig)
			}
			lr.Ops = append(lr.Ops, op)
		}
		resp.Lists[name] = lr
		digest := listDigest(lr)
		next.Lists[name] = digest
		if prev.Lists[name] != digest {
			changed = true
		}
	}
	for id, sub := range req.Subscriptions {
		// A subscription shows a room the device has seen, never one it
		// only names: what is not stored was not given to this token.
		if rooms[id] != nil {
			want[id] = want[id].merge(*sub)
		}
	}
	// A room the client holds that the user has since left is sent once
	// more, with the leave, so the client can drop it.
	for id, sent := range prev.Rooms {
		if r := rooms[id]; r != nil && r.Membership != sent.Membership && (r.Membership == "leave" || r.Membership == "ban") {
			if _, ok := want[id]; !ok {
				want[id] = roomConfig{TimelineLimit: 1}
			}
		}
	}

	for id, cfg := range want {
		r := rooms[id]
		rr, sent, err := s.room(ctx, d, r, cfg, prev.Rooms[id], prev.NID, pos, nid)
		if err != nil {
			return nil, nil, false, err
		}
		next.Rooms[id] = sent
		if rr != nil {
			resp.Rooms[id] = rr
			changed = true
		}
	}

	if ext, ok, err := s.extensions(ctx, d, req, prev, next, fresh, resp.Rooms, want); err != nil {
		return nil, nil, false, err
	} else {
		resp.Extensions = ext
		changed = changed || ok
	}
	return resp, next, changed, nil
}

// listDigest identifies what a list answer told the client.
func listDigest(l listResponse) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d", l.Count)
	for _, op := range l.Ops {
		fmt.Fprintf(h, "|%d-%d:%s", op.Range[0], op.Range[1], strings.Join(op.RoomIDs, ","))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// match reports whether a room passes a list's filters.
func (f *listFilter) match(r *roomInfo) bool {
	if f == nil {
		return true
	}
	if f.IsDM != nil && *f.IsDM != r.DM {
		return false
	}
	invite := r.Membership == "invite"
	if f.IsInvite != nil && *f.IsInvite != invite {
		return false
	}
	if f.IsEncrypted != nil && *f.IsEncrypted != r.Encrypted {
		return false
	}
	typeIn := func(types []*string) bool {
		for _, t := range types {
			if (t == nil && r.Type == nil) || (t != nil && r.Type != nil && *t == *r.Type) {
				return true
			}
		}
		return false
	}
	if f.RoomTypes != nil && !typeIn(f.RoomTypes) {
		return false
	}
	if len(f.NotTypes) > 0 && typeIn(f.NotTypes) {
		return false
	}
	if len(f.Tags) > 0 && !slices.ContainsFunc(f.Tags, func(t string) bool { return r.Tags[t] }) {
		return false
	}
	if slices.ContainsFunc(f.NotTags, func(t string) bool { return r.Tags[t] }) {
		return false
	}
	return true
}

// roomSum is a digest of what a room answer carries besides timeline and
// state: when it changes, the room is sent.
func roomSum(r *roomInfo) string {
	return strconv.FormatUint(uint64(len(r.Name)), 36) + "|" + r.Name + "|" + r.Avatar + "|" + strings.Join(r.Heroes, ",") + "|" +
		strconv.FormatInt(r.Joined, 10) + "|" + strconv.FormatInt(r.Invited, 10) + "|" +
		strconv.FormatInt(r.Notifications, 10) + "|" + strconv.FormatInt(r.Highlights, 10) + "|" +
		strconv.FormatInt(r.Bump, 10) + "|" + strconv.FormatBool(r.DM)
}
