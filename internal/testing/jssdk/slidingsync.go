package jssdk

import (
	"encoding/json"
	"fmt"
)

// SlidingSync is scripts/slidingsync.mjs: matrix-js-sdk's SlidingSync
// driven by environment variables, printing what the client saw. Its
// header comment documents every variable and line; SlidingSyncEnv sets
// the session.
var SlidingSync = File("slidingsync.mjs")

// SlidingSyncEnv is the driver's session: the base URL and a logged-in
// device. Add the other SS_ variables to it.
func SlidingSyncEnv(baseURL, userID, accessToken, deviceID string) map[string]string {
	return map[string]string{"SS_BASE_URL": baseURL, "SS_USER_ID": userID, "SS_ACCESS_TOKEN": accessToken, "SS_DEVICE_ID": deviceID}
}

// JSON is v as JSON, for the driver's JSON variables.
func JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("jssdk.JSON: %v", err))
	}
	return string(b)
}

// The driver's lines, decoded with Line.Decode.
type (
	// HTTPLine is one exchange with the sliding sync endpoint, as the
	// SDK's fetch saw it.
	HTTPLine struct {
		N        int               `json:"n"`
		Seq      int               `json:"seq"`
		Method   string            `json:"method"`
		Path     string            `json:"path"`
		Query    map[string]string `json:"query"`
		Request  json.RawMessage   `json:"request"`
		Status   int               `json:"status"`
		Response json.RawMessage   `json:"response"`
		Error    string            `json:"error"`
	}
	// ResponseLine is a response the SDK accepted.
	ResponseLine struct {
		N          int                        `json:"n"`
		Pos        string                     `json:"pos"`
		Lists      map[string]json.RawMessage `json:"lists"`
		Rooms      []string                   `json:"rooms"`
		Extensions map[string]json.RawMessage `json:"extensions"`
	}
	// RoomLine is a room's data as the SDK's RoomData event gave it.
	RoomLine struct {
		N                 int     `json:"n"`
		RoomID            string  `json:"room_id"`
		Name              string  `json:"name"`
		Initial           bool    `json:"initial"`
		IsDM              bool    `json:"is_dm"`
		Limited           bool    `json:"limited"`
		BumpStamp         *int64  `json:"bump_stamp"`
		NotificationCount *int    `json:"notification_count"`
		HighlightCount    *int    `json:"highlight_count"`
		JoinedCount       *int    `json:"joined_count"`
		InvitedCount      *int    `json:"invited_count"`
		NumLive           *int    `json:"num_live"`
		PrevBatch         string  `json:"prev_batch"`
		Heroes            []Hero  `json:"heroes"`
		Timeline          []Event `json:"timeline"`
		RequiredState     []Event `json:"required_state"`
		InviteState       []Event `json:"invite_state"`
	}
	// ExtensionLine is an extension payload the SDK handed to the
	// driver's extension (raw mode).
	ExtensionLine struct {
		N    int             `json:"n"`
		Name string          `json:"name"`
		Data json.RawMessage `json:"data"`
	}
	// CompleteLine follows a response's room data: the lists' counts as
	// the SDK keeps them, and every room seen so far, highest bump_stamp
	// first (the order a room list shows).
	CompleteLine struct {
		N      int            `json:"n"`
		Counts map[string]int `json:"counts"`
		Order  []string       `json:"order"`
	}
	// ClientLine is the SDK's Room objects after a response (sdk mode).
	ClientLine struct {
		N     int          `json:"n"`
		Rooms []ClientRoom `json:"rooms"`
	}
	// LifecycleLine is a request that failed; the SDK retries it.
	LifecycleLine struct {
		N     int    `json:"n"`
		State string `json:"state"`
		Error struct {
			Status  int    `json:"status"`
			Errcode string `json:"errcode"`
			Message string `json:"message"`
		} `json:"error"`
	}
	// DeadlineLine is the driver giving up.
	DeadlineLine struct {
		N          int      `json:"n"`
		WaitingFor []string `json:"waiting_for"`
	}

	// Event is an event of a RoomLine.
	Event struct {
		EventID  string         `json:"event_id"`
		Type     string         `json:"type"`
		Sender   string         `json:"sender"`
		StateKey *string        `json:"state_key"`
		Body     string         `json:"body"`
		Content  map[string]any `json:"content"`
	}
	// Hero is a member a nameless room is named after.
	Hero struct {
		UserID      string `json:"user_id"`
		Displayname string `json:"displayname"`
	}
	// ClientRoom is a Room object of the SDK.
	ClientRoom struct {
		RoomID        string `json:"room_id"`
		Name          string `json:"name"`
		Membership    string `json:"membership"`
		BumpStamp     *int64 `json:"bump_stamp"`
		Notifications int    `json:"notifications"`
		Highlights    int    `json:"highlights"`
		Timeline      []struct {
			EventID string `json:"event_id"`
			Type    string `json:"type"`
			Sender  string `json:"sender"`
			Body    string `json:"body"`
		} `json:"timeline"`
	}
)

// Of decodes every line of type typ into a T.
func Of[T any](lines []Line, typ string) ([]T, error) {
	var out []T
	for _, l := range lines {
		if l.Type != typ {
			continue
		}
		var v T
		if err := l.Decode(&v); err != nil {
			return nil, fmt.Errorf("decoding %s line %s: %w", typ, l.Raw, err)
		}
		out = append(out, v)
	}
	return out, nil
}
