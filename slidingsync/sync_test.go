package slidingsync

import (
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

func TestRoomListOrderedByActivity(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	rooms := map[string]id.RoomID{}
	for _, name := range []string{"Garden", "Kitchen", "Attic"} {
		rooms[name] = createRoom(t, alice, &mautrix.ReqCreateRoom{Name: name, Preset: "private_chat"})
	}
	send(t, alice, rooms["Kitchen"], "kettle on")
	send(t, alice, rooms["Garden"], "roses out")
	send(t, alice, rooms["Attic"], "boxes")
	send(t, alice, rooms["Garden"], "weeds too")

	req := map[string]any{"lists": map[string]any{"all": map[string]any{
		"ranges": [][2]int{{0, 1}}, "timeline_limit": 1,
		"required_state": [][2]string{{"m.room.name", ""}, {"m.room.member", "$ME"}},
	}}}
	status, a := ssync(t, h.url, alice.AccessToken, "", 0, req)
	if status != 200 {
		t.Fatalf("first request: %d %s %s", status, a.Errcode, a.Error)
	}
	l := a.Lists["all"]
	if l.Count != 3 || len(l.Ops) != 1 || !slices.Equal(l.Ops[0].RoomIDs, []string{rooms["Garden"].String(), rooms["Attic"].String()}) {
		t.Fatalf("list = %+v, want Garden then Attic of 3", l)
	}
	g := a.Rooms[rooms["Garden"].String()]
	if g.Name != "Garden" || !g.Initial || !slices.Equal(bodies(g.Timeline), []string{"weeds too"}) || g.JoinedCount != 1 || len(g.RequiredState) != 2 {
		t.Fatalf("Garden = %+v", g)
	}
	if _, ok := a.Rooms[rooms["Kitchen"].String()]; ok {
		t.Fatal("Kitchen is outside the range but was sent")
	}

	// A message in Kitchen wakes the waiting request and moves it up.
	done := make(chan *answer, 1)
	go func() {
		_, a2 := ssync(t, h.url, alice.AccessToken, a.Pos, 30*time.Second, req)
		done <- a2
	}()
	time.Sleep(500 * time.Millisecond)
	send(t, alice, rooms["Kitchen"], "tea ready")
	var a2 *answer
	select {
	case a2 = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the waiting request did not return after a message")
	}
	if a2.Pos == a.Pos || a2.Lists["all"].Ops[0].RoomIDs[0] != rooms["Kitchen"].String() {
		t.Fatalf("after a message in Kitchen: %+v", a2)
	}
	k := a2.Rooms[rooms["Kitchen"].String()]
	if !k.Initial || !slices.Equal(bodies(k.Timeline), []string{"tea ready"}) {
		t.Fatalf("Kitchen = %+v", k)
	}
	// Another message in Kitchen now comes as a delta.
	send(t, alice, rooms["Kitchen"], "biscuits")
	_, a3 := ssync(t, h.url, alice.AccessToken, a2.Pos, 30*time.Second, req)
	k = a3.Rooms[rooms["Kitchen"].String()]
	if k.Initial || !slices.Equal(bodies(k.Timeline), []string{"biscuits"}) || k.NumLive != 1 {
		t.Fatalf("Kitchen delta = %+v", k)
	}
}
