package slidingsync

import "encoding/json"

// v2Sync is the part of a v2 /sync answer the poller keeps. Events stay
// raw: they are stored and handed to clients as the homeserver wrote them.
type v2Sync struct {
	NextBatch   string `json:"next_batch"`
	AccountData struct {
		Events []json.RawMessage `json:"events"`
	} `json:"account_data"`
	ToDevice struct {
		Events []json.RawMessage `json:"events"`
	} `json:"to_device"`
	DeviceLists struct {
		Changed []string `json:"changed"`
		Left    []string `json:"left"`
	} `json:"device_lists"`
	OTKCounts      map[string]int `json:"device_one_time_keys_count"`
	FallbackTypes  *[]string      `json:"device_unused_fallback_key_types"`
	FallbackTypes2 *[]string      `json:"org.matrix.msc2732.device_unused_fallback_key_types"`
	Rooms          struct {
		Join   map[string]v2JoinedRoom  `json:"join"`
		Invite map[string]v2InvitedRoom `json:"invite"`
		Leave  map[string]v2JoinedRoom  `json:"leave"`
		Knock  map[string]v2InvitedRoom `json:"knock"`
	} `json:"rooms"`
}

type v2JoinedRoom struct {
	Summary struct {
		Heroes  *[]string `json:"m.heroes"`
		Joined  *int      `json:"m.joined_member_count"`
		Invited *int      `json:"m.invited_member_count"`
	} `json:"summary"`
	State struct {
		Events []json.RawMessage `json:"events"`
	} `json:"state"`
	Timeline struct {
		Events    []json.RawMessage `json:"events"`
		Limited   bool              `json:"limited"`
		PrevBatch string            `json:"prev_batch"`
	} `json:"timeline"`
	Ephemeral struct {
		Events []json.RawMessage `json:"events"`
	} `json:"ephemeral"`
	AccountData struct {
		Events []json.RawMessage `json:"events"`
	} `json:"account_data"`
	Unread *struct {
		Notifications int `json:"notification_count"`
		Highlights    int `json:"highlight_count"`
	} `json:"unread_notifications"`
}

type v2InvitedRoom struct {
	InviteState struct {
		Events []json.RawMessage `json:"events"`
	} `json:"invite_state"`
	KnockState struct {
		Events []json.RawMessage `json:"events"`
	} `json:"knock_state"`
}

// envelope is what the service reads of a stored event
// to index, filter and order.
type envelope struct {
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key"`
	Sender   string          `json:"sender"`
	EventID  string          `json:"event_id"`
	TS       int64           `json:"origin_server_ts"`
	Content  json.RawMessage `json:"content"`
}

func parseEvent(raw json.RawMessage) (envelope, bool) {
	var e envelope
	if json.Unmarshal(raw, &e) != nil || e.Type == "" {
		return e, false
	}
	return e, true
}

// isBump reports whether an event moves its room up the list: what a
// person did, not membership churn or a reaction (the set Synapse uses).
func isBump(typ string) bool {
	switch typ {
	case "m.room.create", "m.room.message", "m.room.encrypted", "m.sticker",
		"m.call.invite", "m.poll.start", "m.beacon_info",
		"org.matrix.msc3381.poll.start", "org.matrix.msc3672.beacon_info":
		return true
	}
	return false
}
