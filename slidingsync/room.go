package slidingsync

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
)

// room builds one room's answer for a client that was sent it as sent
// (nil if never), and what the client holds after it. The answer is nil
// when the client already has everything.
func (s *Service) room(ctx context.Context, d *device, r *roomInfo, cfg roomConfig, sent *sentRoom, prevNID, pos, nid int64) (*roomResponse, *sentRoom, error) {
	now := &sentRoom{Pos: pos, NID: nid, State: cfg.key(), Membership: r.Membership, Sum: roomSum(r), Limit: cfg.TimelineLimit}
	invite := r.Membership == "invite" || r.Membership == "knock"
	initial := sent == nil ||
		(sent.Membership != r.Membership && (invite || sent.Membership == "invite" || sent.Membership == "knock"))
	if invite {
		if !initial && sent.Sum == now.Sum {
			return nil, now, nil
		}
		return &roomResponse{
			Name: r.Name, Avatar: r.Avatar, IsDM: r.DM, Initial: initial,
			BumpStamp: r.Bump, InviteState: r.InviteState,
		}, now, nil
	}

	if !initial && now.State != sent.State && subsetOf(now.State, sent.State) {
		// Asking less state of a room than it was sent with sends
		// nothing: the client has it. What it was sent with is kept.
		now.State = sent.State
	}
	// A client that asks a room it has for more timeline than it was
	// sent gets the longer timeline whole, flagged as Synapse does.
	expand := !initial && cfg.TimelineLimit > sent.Limit
	if !initial && !expand && r.Changed <= sent.Pos && sent.State == now.State && sent.Sum == now.Sum && r.Membership == sent.Membership {
		// Nothing stored for the room since the client had it: no reads.
		// Its timeline limit stays the one it was last sent with.
		now.Limit = sent.Limit
		return nil, now, nil
	}
	rr := &roomResponse{
		Name: r.Name, Avatar: r.Avatar, IsDM: r.DM, Initial: initial,
		JoinedCount: &r.Joined, InvitedCount: &r.Invited,
		NotificationCount: r.Notifications, HighlightCount: r.Highlights,
		BumpStamp: r.Bump,
	}
	var events []timelineEvent
	var err error
	if initial || expand {
		rr.Expanded = expand
		if cfg.TimelineLimit > 0 {
			if events, err = s.st.timeline(ctx, d.dev, r.ID, nid, cfg.TimelineLimit); err != nil {
				return nil, nil, err
			}
			if len(events) < cfg.TimelineLimit && !r.Complete {
				if more, err := s.backfill(ctx, d, r, cfg.TimelineLimit-len(events)); err != nil {
					s.log.Debug("sliding sync: backfill failed", "room", r.ID, "err", err)
				} else if more > 0 {
					if events, err = s.st.timeline(ctx, d.dev, r.ID, nid, cfg.TimelineLimit); err != nil {
						return nil, nil, err
					}
				}
			}
		}
		// The timeline is whole only when it reaches the room's creation.
		rr.Limited = len(events) == 0 || !isCreate(events[0].Raw)
	} else {
		if cfg.TimelineLimit > 0 {
			if events, err = s.st.timelineSince(ctx, d.dev, r.ID, sent.NID, nid, cfg.TimelineLimit); err != nil {
				return nil, nil, err
			}
		}
		rr.Limited = len(events) > cfg.TimelineLimit || r.GapNID > sent.NID
		if len(events) > cfg.TimelineLimit {
			events = events[len(events)-cfg.TimelineLimit:]
		}
	}
	if rr.Limited {
		rr.PrevBatch = r.PrevBatch
		if len(events) > 0 {
			if rr.PrevBatch, err = s.st.timelineToken(ctx, d.dev, r.ID, events[0].Ord, r.PrevBatch); err != nil {
				return nil, nil, err
			}
		}
	}
	var senders []string
	for _, e := range events {
		rr.Timeline = append(rr.Timeline, e.Raw)
		if e.NID > prevNID && prevNID > 0 {
			rr.NumLive++
		}
		if ev, ok := parseEvent(e.Raw); ok && !slices.Contains(senders, ev.Sender) {
			senders = append(senders, ev.Sender)
		}
	}
	since := int64(0)
	if !initial && sent.State == now.State {
		since = sent.Pos
	}
	spec := parseStateSpec(cfg.RequiredState, d.userID)
	if rr.RequiredState, err = s.requiredState(ctx, d.dev, r.ID, spec, since, pos, senders); err != nil {
		return nil, nil, err
	}
	if r.Name == "" && len(r.Heroes) > 0 {
		if rr.Heroes, err = s.heroes(ctx, d.dev, r); err != nil {
			return nil, nil, err
		}
	}
	if !initial && !expand && len(rr.Timeline) == 0 && len(rr.RequiredState) == 0 && !rr.Limited && sent.Sum == now.Sum {
		now.Limit = sent.Limit
		return nil, now, nil
	}
	return rr, now, nil
}

func isCreate(raw json.RawMessage) bool {
	e, _ := parseEvent(raw)
	return e.Type == "m.room.create"
}

// stateSpec is a required_state resolved for one user.
type stateSpec struct {
	all      bool                       // ["*", "*"]
	anyKey   map[string]bool            // [type, "*"]
	keys     map[string]map[string]bool // [type, key]
	anyType  map[string]bool            // ["*", key]
	lazy     bool                       // ["m.room.member", "$LAZY"]
	hasRules bool
}

func parseStateSpec(pairs [][]string, userID string) stateSpec {
	sp := stateSpec{anyKey: map[string]bool{}, keys: map[string]map[string]bool{}, anyType: map[string]bool{}}
	for _, p := range pairs {
		typ, key := p[0], p[1]
		if key == "$ME" {
			key = userID
		}
		sp.hasRules = true
		switch {
		case typ == "*" && key == "*":
			sp.all = true
		case typ == "*":
			sp.anyType[key] = true
		case key == "*":
			sp.anyKey[typ] = true
		case typ == "m.room.member" && key == "$LAZY":
			sp.lazy = true
		default:
			if sp.keys[typ] == nil {
				sp.keys[typ] = map[string]bool{}
			}
			sp.keys[typ][key] = true
		}
	}
	return sp
}

func (sp stateSpec) match(typ, key string) bool {
	return sp.all || sp.anyKey[typ] || sp.anyType[key] || sp.keys[typ][key]
}

// requiredState reads the state a spec asks for, changed after since and
// no later than pos, with the members of senders when it asks $LAZY.
func (s *Service) requiredState(ctx context.Context, dev int64, roomID string, sp stateSpec, since, pos int64, senders []string) ([]json.RawMessage, error) {
	if !sp.hasRules {
		return nil, nil
	}
	var out []json.RawMessage
	keep := func(rows []stateEvent, also func(stateEvent) bool) {
		for _, e := range rows {
			if e.Changed <= pos && (sp.match(e.Type, e.StateKey) || (also != nil && also(e))) {
				out = append(out, e.Raw)
			}
		}
	}
	if sp.all || len(sp.anyType) > 0 {
		rows, err := s.st.state(ctx, dev, roomID, nil, since)
		if err != nil {
			return nil, err
		}
		keep(rows, func(e stateEvent) bool {
			return sp.lazy && e.Type == "m.room.member" && slices.Contains(senders, e.StateKey)
		})
		return out, nil
	}
	// Members are most of a big room's state: they are read by key
	// unless every member is asked for.
	types := []string{}
	for t := range sp.anyKey {
		types = append(types, t)
	}
	for t := range sp.keys {
		if t != "m.room.member" || sp.anyKey[t] {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	types = slices.Compact(types)
	rows, err := s.st.state(ctx, dev, roomID, types, since)
	if err != nil {
		return nil, err
	}
	keep(rows, nil)
	if !sp.anyKey["m.room.member"] {
		var members []string
		for k := range sp.keys["m.room.member"] {
			members = append(members, k)
		}
		if sp.lazy {
			members = append(members, senders...)
		}
		slices.Sort(members)
		members = slices.Compact(members)
		rows, err := s.st.stateKeys(ctx, dev, roomID, "m.room.member", members)
		if err != nil {
			return nil, err
		}
		for _, e := range rows {
			if e.Changed > since && e.Changed <= pos {
				out = append(out, e.Raw)
			}
		}
	}
	return out, nil
}

// heroes are the members a nameless room is called after, with the names
// and avatars their member events give.
func (s *Service) heroes(ctx context.Context, dev int64, r *roomInfo) ([]hero, error) {
	ids := r.Heroes
	if len(ids) > 5 {
		ids = ids[:5]
	}
	rows, err := s.st.stateKeys(ctx, dev, r.ID, "m.room.member", ids)
	if err != nil {
		return nil, err
	}
	byID := map[string]hero{}
	for _, e := range rows {
		ev, _ := parseEvent(e.Raw)
		var c struct {
			Name   string `json:"displayname"`
			Avatar string `json:"avatar_url"`
		}
		json.Unmarshal(ev.Content, &c)
		byID[e.StateKey] = hero{UserID: e.StateKey, DisplayName: c.Name, AvatarURL: c.Avatar}
	}
	out := make([]hero, 0, len(ids))
	for _, id := range ids {
		h, ok := byID[id]
		if !ok {
			h = hero{UserID: id}
		}
		out = append(out, h)
	}
	return out, nil
}

// subsetOf reports whether every [type, key] pair of the required_state
// key a is in b.
func subsetOf(a, b string) bool {
	have := map[string]bool{}
	for _, p := range strings.Split(b, "\x01") {
		have[p] = true
	}
	for _, p := range strings.Split(a, "\x01") {
		if p != "" && !have[p] {
			return false
		}
	}
	return true
}
