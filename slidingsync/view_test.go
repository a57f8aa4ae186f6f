package slidingsync

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
)

// TestAnswerDuringApply stores a new message while an answer is being
// read, between its read of the device's counters and its read of the
// rooms: the room it moves is sent with the message, never with the new
// bump_stamp alone. (A client sent the bump alone shows the room moved
// up with its old last message.)
func TestAnswerDuringApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, d := storedDevice(t, "VIEW")
	dev := d.dev
	if _, err := svc.st.apply(ctx, dev, "", syntheticSync(3)); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"lists": map[string]any{"all": map[string]any{
		"ranges": [][2]int{{0, 1}}, "timeline_limit": 1, "required_state": [][2]string{{"m.room.name", ""}},
	}}})
	req, merr := parseRequest(raw)
	if merr != nil {
		t.Fatal(merr)
	}
	v, err := svc.st.view(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	first, prev, _, err := svc.answer(ctx, d, req, nil, v)
	if err != nil {
		t.Fatal(err)
	}
	const top = "!room0002:localhost"
	if got := first.Lists["all"].Ops[0].RoomIDs; len(got) != 2 || got[0] != top {
		t.Fatalf("first list = %v, want %s first", got, top)
	}

	// The next homeserver answer: one message in the room on top.
	var delta v2Sync
	delta.NextBatch = "s2"
	delta.Rooms.Join = map[string]v2JoinedRoom{}
	msg, _ := json.Marshal(map[string]any{"type": "m.room.message", "sender": "@alice:localhost", "event_id": "$late",
		"origin_server_ts": int64(1_800_000_000_000), "content": map[string]any{"msgtype": "m.text", "body": "late"}})
	var room v2JoinedRoom
	room.Timeline.Events = []json.RawMessage{msg}
	delta.Rooms.Join[top] = room
	applied := false
	svc.st.testHookBeforeRooms = func() {
		if applied {
			return
		}
		applied = true
		if _, err := svc.st.apply(ctx, dev, "s1", &delta); err != nil {
			t.Error(err)
		}
	}
	v, err = svc.st.view(ctx, dev)
	if err != nil || !applied {
		t.Fatalf("view: %v (applied %v)", err, applied)
	}
	second, _, changed, err := svc.answer(ctx, d, req, prev, v)
	if err != nil {
		t.Fatal(err)
	}
	r := second.Rooms[top]
	if !changed || r == nil {
		t.Fatalf("the message was stored before the answer was read, but the answer has no %s: %+v", top, second.Rooms)
	}
	if got := bodies(r.Timeline); !slices.Equal(got, []string{"late"}) || r.BumpStamp != 1_800_000_000_000 || r.NumLive != 1 {
		t.Fatalf("%s = timeline %q, bump_stamp %d, num_live %d; want [late], 1800000000000, 1", top, got, r.BumpStamp, r.NumLive)
	}
}
