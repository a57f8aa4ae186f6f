package slidingsync

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestInvitesDMsAndFilters: the filters Element X sends split one user's
// rooms the way the homeserver's own state says.
func TestInvitesDMsAndFilters(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	bob := h.user(t, "bob")
	ctx := context.Background()
	encrypted := createRoom(t, bob, &mautrix.ReqCreateRoom{Name: "Secrets", Preset: "private_chat",
		InitialState: []*event.Event{{Type: event.StateEncryption, StateKey: new(string), Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	plain := createRoom(t, bob, &mautrix.ReqCreateRoom{Name: "Plain", Preset: "public_chat"})
	space := createRoom(t, bob, &mautrix.ReqCreateRoom{Name: "Space", Preset: "public_chat", CreationContent: map[string]any{"type": "m.space"}})
	dm := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bob.UserID}})
	send(t, alice, dm, "hi bob")

	all := func(filters map[string]any) map[string]any {
		return map[string]any{"lists": map[string]any{"l": map[string]any{
			"ranges": [][2]int{{0, 20}}, "timeline_limit": 1, "filters": filters,
			"required_state": [][2]string{{"*", "*"}},
		}}}
	}
	roomsOf := func(filters map[string]any) []string {
		t.Helper()
		status, a := ssync(t, h.url, bob.AccessToken, "", 0, all(filters))
		if status != 200 {
			t.Fatalf("%v: %d %s", filters, status, a.Error)
		}
		ids := a.Lists["l"].Ops[0].RoomIDs
		if a.Lists["l"].Count != len(ids) {
			t.Fatalf("%v: count %d for %d rooms", filters, a.Lists["l"].Count, len(ids))
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids ...id.RoomID) []string {
		var out []string
		for _, i := range ids {
			out = append(out, i.String())
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		filters map[string]any
		want    []string
	}{
		{nil, sorted(encrypted, plain, space, dm)},
		{map[string]any{"is_invite": true}, sorted(dm)},
		{map[string]any{"is_dm": true}, sorted(dm)},
		{map[string]any{"is_dm": false}, sorted(encrypted, plain, space)},
		{map[string]any{"is_encrypted": true}, sorted(encrypted)},
		{map[string]any{"room_types": []any{"m.space"}}, sorted(space)},
		{map[string]any{"not_room_types": []any{"m.space"}}, sorted(encrypted, plain, dm)},
		{map[string]any{"room_types": []any{nil}}, sorted(encrypted, plain, dm)},
	} {
		if got := roomsOf(c.filters); !slices.Equal(got, c.want) {
			t.Errorf("filters %v: rooms %v, want %v", c.filters, got, c.want)
		}
	}

	// The invite carries its stripped state, and no timeline.
	_, a := ssync(t, h.url, bob.AccessToken, "", 0, all(map[string]any{"is_invite": true}))
	inv := a.Rooms[dm.String()]
	if len(inv.InviteState) == 0 || len(inv.Timeline) != 0 || !inv.IsDM {
		t.Fatalf("invite = %+v", inv)
	}
	var sawInvite bool
	for _, raw := range inv.InviteState {
		var e struct {
			Type     string `json:"type"`
			StateKey string `json:"state_key"`
			Content  struct {
				Membership string `json:"membership"`
			} `json:"content"`
		}
		json.Unmarshal(raw, &e)
		sawInvite = sawInvite || (e.Type == "m.room.member" && e.StateKey == bob.UserID.String() && e.Content.Membership == "invite")
	}
	if !sawInvite {
		t.Fatalf("invite_state lacks bob's invite: %s", inv.InviteState)
	}

	// Tags: a favourite is found by tags and left out by not_tags.
	if err := bob.AddTag(ctx, plain, event.RoomTagFavourite, 0.5); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return slices.Equal(roomsOf(map[string]any{"tags": []string{"m.favourite"}}), sorted(plain))
	})
	if got := roomsOf(map[string]any{"not_tags": []string{"m.favourite"}}); slices.Contains(got, plain.String()) {
		t.Errorf("not_tags m.favourite kept the favourite: %v", got)
	}

	// Joining turns the invite into a room, sent whole; the client marks
	// it direct in m.direct, as Element does on accepting a DM.
	if _, err := bob.JoinRoomByID(ctx, dm); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAccountData(ctx, "m.direct", map[string][]id.RoomID{alice.UserID.String(): {dm}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(roomsOf(map[string]any{"is_invite": true})) == 0 })
	waitFor(t, func() bool { return slices.Equal(roomsOf(map[string]any{"is_dm": true}), sorted(dm)) })
	_, a = ssync(t, h.url, bob.AccessToken, "", 0, all(map[string]any{"is_dm": true}))
	r := a.Rooms[dm.String()]
	// timeline_limit 1: the newest event is bob's own join.
	if !r.Initial || !r.IsDM || len(r.Timeline) != 1 || !strings.Contains(string(r.Timeline[0]), `"membership":"join"`) || r.JoinedCount != 2 {
		j, _ := json.Marshal(r)
		t.Fatalf("joined DM = %s", j)
	}
	if r.Name != "" || len(r.Heroes) != 1 || r.Heroes[0].UserID != alice.UserID.String() {
		t.Fatalf("a nameless DM is named after its other member: name %q heroes %+v", r.Name, r.Heroes)
	}
}

// TestRequiredState: [type, key] pairs, wildcards, $ME and $LAZY pick
// state as a client asks, and a changed name arrives as a delta.
func TestRequiredState(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	bob := h.user(t, "bob")
	carol := h.user(t, "carol")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Club", Topic: "chess", Preset: "public_chat"})
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoomByID(context.Background(), room); err != nil {
			t.Fatal(err)
		}
	}
	send(t, bob, room, "e4")

	state := func(rs [][2]string, limit int) []string {
		t.Helper()
		_, a := ssync(t, h.url, alice.AccessToken, "", 0, map[string]any{"room_subscriptions": map[string]any{
			room.String(): map[string]any{"required_state": rs, "timeline_limit": limit}}})
		var out []string
		for _, raw := range a.Rooms[room.String()].RequiredState {
			var e struct {
				Type     string `json:"type"`
				StateKey string `json:"state_key"`
			}
			json.Unmarshal(raw, &e)
			out = append(out, e.Type+"|"+e.StateKey)
		}
		slices.Sort(out)
		return out
	}
	member := func(c *mautrix.Client) string { return "m.room.member|" + c.UserID.String() }
	for _, c := range []struct {
		rs    [][2]string
		limit int
		want  []string
	}{
		{[][2]string{{"m.room.topic", ""}}, 1, []string{"m.room.topic|"}},
		{[][2]string{{"m.room.member", "$ME"}}, 1, []string{member(alice)}},
		// bob sent the last event: $LAZY gives his member event.
		{[][2]string{{"m.room.member", "$LAZY"}}, 1, []string{member(bob)}},
		{[][2]string{{"m.room.member", "*"}}, 1, sortedStrings(member(alice), member(bob), member(carol))},
		{[][2]string{{"m.room.name", "*"}, {"m.room.topic", "*"}}, 1, []string{"m.room.name|", "m.room.topic|"}},
		{nil, 1, nil},
	} {
		if got := state(c.rs, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("required_state %v: got %v, want %v", c.rs, got, c.want)
		}
	}
	everything := state([][2]string{{"*", "*"}}, 1)
	if len(everything) < 8 || !slices.Contains(everything, "m.room.create|") || !slices.Contains(everything, "m.room.join_rules|") {
		t.Errorf("[*,*] gave %v", everything)
	}

	// A renamed room: the client at its position gets the new name, and
	// only what changed.
	sub := map[string]any{"room_subscriptions": map[string]any{room.String(): map[string]any{
		"required_state": [][2]string{{"m.room.name", ""}, {"m.room.topic", ""}}, "timeline_limit": 5}}}
	_, a := ssync(t, h.url, alice.AccessToken, "", 0, sub)
	if _, err := alice.SendStateEvent(context.Background(), room, event.StateRoomName, "", &event.RoomNameEventContent{Name: "Chess Club"}); err != nil {
		t.Fatal(err)
	}
	_, a2 := ssync(t, h.url, alice.AccessToken, a.Pos, 30e9, sub)
	r := a2.Rooms[room.String()]
	if r.Name != "Chess Club" || len(r.RequiredState) != 1 || !strings.Contains(string(r.RequiredState[0]), "Chess Club") {
		t.Fatalf("after the rename: name %q required_state %s", r.Name, r.RequiredState)
	}
}

func sortedStrings(s ...string) []string { slices.Sort(s); return s }

// TestTimelineLimitsAndPagination: a room with more history than the
// first v2 sync gave gets the asked timeline (from /messages), marked
// limited with a prev_batch that continues exactly before it.
func TestTimelineLimitsAndPagination(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Log", Preset: "private_chat"})
	for i := range 30 {
		send(t, alice, room, fmt.Sprintf("line %02d", i))
	}
	sub := func(limit int) map[string]any {
		return map[string]any{"room_subscriptions": map[string]any{room.String(): map[string]any{"timeline_limit": limit}}}
	}
	_, a := ssync(t, h.url, alice.AccessToken, "", 0, sub(20))
	r := a.Rooms[room.String()]
	var want []string
	for i := 10; i < 30; i++ {
		want = append(want, fmt.Sprintf("line %02d", i))
	}
	if got := bodies(r.Timeline); !slices.Equal(got, want) || !r.Limited || r.PrevBatch == "" {
		t.Fatalf("timeline_limit 20: limited %v prev_batch %q bodies %v", r.Limited, r.PrevBatch, got)
	}
	// The client paginates from prev_batch and finds what came before,
	// with nothing skipped.
	msgs, err := alice.Messages(context.Background(), room, r.PrevBatch, "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	var older []string
	for _, e := range msgs.Chunk {
		if e.Type == event.EventMessage {
			body, _ := e.Content.Raw["body"].(string)
			older = append(older, body)
		}
	}
	if len(older) < 10 || !slices.Contains(older, "line 09") || !slices.Contains(older, "line 00") {
		t.Fatalf("paginating from prev_batch gave %v", older)
	}
	// A small limit gives the newest.
	_, a = ssync(t, h.url, alice.AccessToken, "", 0, sub(1))
	if got := bodies(a.Rooms[room.String()].Timeline); !slices.Equal(got, []string{"line 29"}) {
		t.Fatalf("timeline_limit 1: %v", got)
	}
}
