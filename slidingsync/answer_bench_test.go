package slidingsync

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"
)

// syntheticSync is a first v2 sync of a user in n rooms, shaped as
// Dendrite's: a few state events and ten messages per room.
func syntheticSync(n int) *v2Sync {
	var r v2Sync
	r.NextBatch = "s1"
	r.Rooms.Join = map[string]v2JoinedRoom{}
	ev := func(typ, key, sender string, ts int64, content any) json.RawMessage {
		m := map[string]any{"type": typ, "sender": sender, "origin_server_ts": ts, "content": content,
			"event_id": fmt.Sprintf("$%s%d", typ, ts)}
		if key != "-" {
			m["state_key"] = key
		}
		b, _ := json.Marshal(m)
		return b
	}
	me := "@alice:localhost"
	for i := range n {
		id := fmt.Sprintf("!room%04d:localhost", i)
		base := int64(1_700_000_000_000 + i*1000)
		var room v2JoinedRoom
		room.State.Events = []json.RawMessage{
			ev("m.room.create", "", me, base, map[string]any{"creator": me, "room_version": "10"}),
			ev("m.room.member", me, me, base+1, map[string]any{"membership": "join", "displayname": "alice"}),
			ev("m.room.power_levels", "", me, base+2, map[string]any{"users": map[string]int{me: 100}}),
			ev("m.room.join_rules", "", me, base+3, map[string]any{"join_rule": "invite"}),
			ev("m.room.history_visibility", "", me, base+4, map[string]any{"history_visibility": "shared"}),
			ev("m.room.name", "", me, base+5, map[string]any{"name": fmt.Sprintf("Room %d", i)}),
		}
		for j := range 10 {
			room.Timeline.Events = append(room.Timeline.Events, ev("m.room.message", "-", me, base+10+int64(j), map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("message %d in room %d", j, i)}))
		}
		room.Timeline.Limited = true
		room.Timeline.PrevBatch = fmt.Sprintf("t%d_1", i)
		joined := 1
		room.Summary.Joined = &joined
		r.Rooms.Join[id] = room
	}
	return &r
}

// storedDevice opens a service on its own SQLite file, with no homeserver
// behind it, and adds @alice:localhost's device id to its store: what is
// stored for it is the caller's.
func storedDevice(tb testing.TB, id string) (*Service, *device) {
	tb.Helper()
	ctx := context.Background()
	u, _ := url.Parse("http://127.0.0.1:1")
	svc, err := Open(Config{Upstream: u, SQLitePath: filepath.Join(tb.TempDir(), "store.db"), IdleTimeout: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { svc.Close() })
	if err := svc.st.init(ctx); err != nil {
		tb.Fatal(err)
	}
	dev, err := svc.st.device(ctx, "@alice:localhost", id)
	if err != nil {
		tb.Fatal(err)
	}
	return svc, &device{dev: dev, userID: "@alice:localhost", deviceID: id}
}

// BenchmarkAnswerKnownDevice is the edge's own cost of a first list for
// a device whose rooms are stored: the part of "first list" that is not
// the homeserver's.
//
//	go test ./slidingsync -run '^$' -bench AnswerKnownDevice -benchtime 50x
func BenchmarkAnswerKnownDevice(b *testing.B) {
	ctx := context.Background()
	svc, d := storedDevice(b, "BENCH")
	t0 := time.Now()
	if _, err := svc.st.apply(ctx, d.dev, "", syntheticSync(benchRooms())); err != nil {
		b.Fatal(err)
	}
	b.Logf("stored a first sync of %d rooms in %v", benchRooms(), time.Since(t0).Round(time.Millisecond))
	raw, _ := json.Marshal(firstListRequest)
	req, merr := parseRequest(raw)
	if merr != nil {
		b.Fatal(merr)
	}
	v, err := svc.st.view(ctx, d.dev)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		resp, _, _, err := svc.answer(ctx, d, req, nil, v)
		if err != nil || len(resp.Rooms) != 20 {
			b.Fatalf("%v, %d rooms", err, len(resp.Rooms))
		}
	}
}
