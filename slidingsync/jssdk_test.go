package slidingsync

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/wellknownd/wellknownd/internal/testing/jssdk"
	"github.com/wellknownd/wellknownd/internal/testing/msc4186"
)

// seededFront is Dendrite with msc4186.Seed's rooms, behind a front that
// serves the sliding sync service as the edge does.
type seededFront struct {
	h          *homeserver
	front      *edgeFront
	f          *msc4186.Fixture
	alice, bob msc4186.Account
}

func seedFront(t *testing.T) *seededFront {
	t.Helper()
	h := startHomeserver(t)
	s := &seededFront{h: h, front: serveFront(t, h.den.URL, h.svc)}
	s.alice, s.bob = h.account(t, "alice"), h.account(t, "bob")
	// Through the front, as a client of the edge makes them.
	s.f = msc4186.Seed(t, s.front.URL, s.alice, s.bob)
	return s
}

// named is room IDs as the fixture's names, for comparisons a person
// reads: Lobby, Secrets, DM, Invitation.
func (s *seededFront) named(ids ...string) []string {
	names := map[string]string{string(s.f.Lobby): "Lobby", string(s.f.Secrets): "Secrets", string(s.f.DM): "DM", string(s.f.Invitation): "Invitation"}
	out := make([]string, len(ids))
	for i, id := range ids {
		if out[i] = names[id]; out[i] == "" {
			out[i] = id
		}
	}
	return out
}

// recency is the fixture's rooms, most recently active first, by name.
func (s *seededFront) recency() []string { return s.named(roomIDs(s.f.Recency)...) }

func (s *seededFront) env(a msc4186.Account) map[string]string {
	return jssdk.SlidingSyncEnv(s.front.URL, a.UserID, a.AccessToken, a.DeviceID)
}

func lines[T any](t *testing.T, all []jssdk.Line, typ string) []T {
	t.Helper()
	v, err := jssdk.Of[T](all, typ)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func decodeLine[T any](t *testing.T, l jssdk.Line) T {
	t.Helper()
	var v T
	if err := l.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func roomIDs(rooms []id.RoomID) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = string(r)
	}
	return out
}

func hasStateEvent(events []jssdk.Event, typ, stateKey string) bool {
	return slices.ContainsFunc(events, func(e jssdk.Event) bool {
		return e.Type == typ && e.StateKey != nil && *e.StateKey == stateKey
	})
}

// checkSeededRooms asserts what the client was told of the fixture's
// rooms in its first response: names, last messages, the DM named after
// Bob, the encrypted room's m.room.encryption, the invitation as an
// invite with its stripped state.
func checkSeededRooms(t *testing.T, s *seededFront, rooms map[string]jssdk.RoomLine) {
	t.Helper()
	f := s.f
	for room, name := range f.Names {
		if r := rooms[string(room)]; r.Name != name || !r.Initial || r.BumpStamp == nil {
			t.Errorf("%s: %+v; want initial, named %q, with a bump_stamp", name, r, name)
		}
	}
	for _, room := range []id.RoomID{f.Lobby, f.DM, f.Secrets} {
		r, name := rooms[string(room)], s.named(string(room))[0]
		if tl := r.Timeline; len(tl) != 1 || tl[0].Body != f.Last[room] {
			t.Errorf("%s: timeline %+v; want its last message %q", name, tl, f.Last[room])
		}
		if r.JoinedCount == nil || !hasStateEvent(r.RequiredState, "m.room.member", s.alice.UserID) || !hasStateEvent(r.RequiredState, "m.room.create", "") {
			t.Errorf("%s: joined_count %v, required_state %+v; want a count, Alice's membership ($ME) and m.room.create", name, r.JoinedCount, r.RequiredState)
		}
	}
	dm := rooms[string(f.DM)]
	if !dm.IsDM || dm.Name != "" || len(dm.Heroes) != 1 || dm.Heroes[0].UserID != s.bob.UserID || dm.Heroes[0].Displayname != "bob" || dm.JoinedCount == nil || *dm.JoinedCount != 2 {
		t.Errorf("the DM: is_dm %v, name %q, heroes %+v, joined %v; want a DM of two without a name, Bob its hero", dm.IsDM, dm.Name, dm.Heroes, dm.JoinedCount)
	}
	if !hasStateEvent(rooms[string(f.Secrets)].RequiredState, "m.room.encryption", "") {
		t.Errorf("Secrets' required_state %+v lacks m.room.encryption", rooms[string(f.Secrets)].RequiredState)
	}
	if hasStateEvent(rooms[string(f.Lobby)].RequiredState, "m.room.encryption", "") {
		t.Errorf("the Lobby is not encrypted, but its required_state has m.room.encryption")
	}
	inv := rooms[string(f.Invitation)]
	if len(inv.Timeline) != 0 || !hasStateEvent(inv.InviteState, "m.room.member", s.alice.UserID) || !hasStateEvent(inv.InviteState, "m.room.name", "") {
		t.Errorf("the invitation: timeline %+v, invite_state %+v; want Alice's invite and the room's name, no timeline", inv.Timeline, inv.InviteState)
	}
}

// TestJSSDKRawOnDendrite runs matrix-js-sdk 37.5.0's SlidingSync (raw
// mode, every extension registered) as Alice against the edge in front of
// Dendrite: her rooms, then to-device messages, keys, account data, a
// receipt and typing from Bob, each reaching the client through its
// extension, and a message sent while the client waits.
func TestJSSDKRawOnDendrite(t *testing.T) {
	t.Parallel()
	s := seedFront(t)
	f := s.f
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const late = "are you still there?"
	env := s.env(s.alice)
	env["SS_EXTENSIONS"] = "to_device,e2ee,account_data,receipts,typing"
	env["SS_TIMEOUT_MS"] = "10000"
	env["SS_UNTIL_BODY"] = late
	env["SS_DEADLINE_MS"] = "180000"
	p := jssdk.Start(t, ctx, jssdk.SlidingSync, env)

	first := decodeLine[jssdk.CompleteLine](t, p.Await("the first response", 90*time.Second, func(l jssdk.Line) bool { return l.Type == "complete" }))
	if got := s.named(first.Order...); !slices.Equal(got, s.recency()) || first.Counts["all"] != 4 {
		t.Errorf("after the first response the client has %v (count %d); want %v, 4", got, first.Counts["all"], s.recency())
	}
	rooms := map[string]jssdk.RoomLine{}
	for _, r := range lines[jssdk.RoomLine](t, p.Lines(), "room") {
		rooms[r.RoomID] = r
	}
	checkSeededRooms(t, s, rooms)
	resp := lines[jssdk.ResponseLine](t, p.Lines(), "response")[0]
	for _, ext := range []string{"to_device", "e2ee", "account_data", "receipts", "typing"} {
		if _, ok := resp.Extensions[ext]; !ok {
			t.Errorf("the first response has no %s extension: %s", ext, resp.Extensions)
		}
	}

	// Bob (and a new device of his) and Alice's own device act, through
	// the edge, while the client long-polls.
	a, b := s.alice.Client(t, s.front.URL), s.bob.Client(t, s.front.URL)
	for n := 1; n <= 3; n++ {
		if _, err := b.SendToDevice(ctx, event.Type{Type: "org.example.ping", Class: event.ToDeviceEventType}, &mautrix.ReqSendToDevice{
			Messages: map[id.UserID]map[id.DeviceID]*event.Content{id.UserID(s.alice.UserID): {id.DeviceID(s.alice.DeviceID): {Raw: map[string]any{"n": n}}}},
		}); err != nil {
			t.Fatalf("sending to-device %d: %v", n, err)
		}
	}
	if _, err := a.UploadKeys(ctx, &mautrix.ReqUploadKeys{OneTimeKeys: oneTimeKeys(string(a.UserID), string(a.DeviceID), 5)}); err != nil {
		t.Fatal(err)
	}
	bob2 := s.h.login(t, "bob")
	if _, err := bob2.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(bob2)}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRoomAccountData(ctx, f.Lobby, "org.example.draft", map[string]any{"text": "half a thought"}); err != nil {
		t.Fatal(err)
	}
	if len(rooms[string(f.DM)].Timeline) == 0 {
		t.Fatal("the DM came without its last message: nothing to send a receipt for")
	}
	dmMessage := id.EventID(rooms[string(f.DM)].Timeline[0].EventID)
	if err := b.SendReceipt(ctx, f.DM, dmMessage, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UserTyping(ctx, f.DM, true, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	// ext waits for the client to be handed an extension payload that
	// match accepts.
	ext := func(name string, match func(json.RawMessage) bool) {
		t.Helper()
		p.Await(name, 90*time.Second, func(l jssdk.Line) bool {
			if l.Type != "extension" {
				return false
			}
			e := decodeLine[jssdk.ExtensionLine](t, l)
			return e.Name == name && match(e.Data)
		})
	}
	type accountDataEvent struct {
		Type    string         `json:"type"`
		Content map[string]any `json:"content"`
	}
	type ephemeralEvent struct {
		Type    string          `json:"type"`
		Content json.RawMessage `json:"content"`
	}
	ext("to_device", func(d json.RawMessage) bool { return strings.Contains(string(d), `"n":3`) })
	ext("e2ee", func(d json.RawMessage) bool {
		var e struct {
			OTK map[string]int `json:"device_one_time_keys_count"`
		}
		json.Unmarshal(d, &e)
		return e.OTK["signed_curve25519"] == 5
	})
	ext("e2ee", func(d json.RawMessage) bool {
		var e struct {
			Lists struct {
				Changed []string `json:"changed"`
			} `json:"device_lists"`
		}
		json.Unmarshal(d, &e)
		return slices.Contains(e.Lists.Changed, s.bob.UserID)
	})
	ext("account_data", func(d json.RawMessage) bool {
		var e struct {
			Global []accountDataEvent `json:"global"`
		}
		json.Unmarshal(d, &e)
		return slices.ContainsFunc(e.Global, func(g accountDataEvent) bool {
			return g.Type == "org.example.settings" && g.Content["theme"] == "dark"
		})
	})
	ext("account_data", func(d json.RawMessage) bool {
		var e struct {
			Rooms map[string][]accountDataEvent `json:"rooms"`
		}
		json.Unmarshal(d, &e)
		return slices.ContainsFunc(e.Rooms[string(f.Lobby)], func(r accountDataEvent) bool {
			return r.Type == "org.example.draft" && r.Content["text"] == "half a thought"
		})
	})
	ext("receipts", func(d json.RawMessage) bool {
		var e struct {
			Rooms map[string]ephemeralEvent `json:"rooms"`
		}
		json.Unmarshal(d, &e)
		var receipts map[string]map[string]map[string]any
		json.Unmarshal(e.Rooms[string(f.DM)].Content, &receipts)
		_, ok := receipts[string(dmMessage)]["m.read"][s.bob.UserID]
		return e.Rooms[string(f.DM)].Type == "m.receipt" && ok
	})
	ext("typing", func(d json.RawMessage) bool {
		var e struct {
			Rooms map[string]ephemeralEvent `json:"rooms"`
		}
		json.Unmarshal(d, &e)
		var typing struct {
			UserIDs []string `json:"user_ids"`
		}
		json.Unmarshal(e.Rooms[string(f.DM)].Content, &typing)
		return e.Rooms[string(f.DM)].Type == "m.typing" && slices.Contains(typing.UserIDs, s.bob.UserID)
	})

	// Bob writes in the DM while the client waits in a long poll that
	// began after everything above: the DM moves to the top.
	var lastSeq int
	for _, l := range lines[jssdk.HTTPLine](t, p.Lines(), "http") {
		lastSeq = max(lastSeq, l.Seq)
	}
	p.Await("a long poll", 60*time.Second, func(l jssdk.Line) bool {
		if l.Type != "sent" {
			return false
		}
		h := decodeLine[jssdk.HTTPLine](t, l)
		return h.Seq > lastSeq && h.Query["pos"] != ""
	})
	if _, err := b.SendText(ctx, f.DM, late); err != nil {
		t.Fatal(err)
	}
	p.Await("the late message", 90*time.Second, func(l jssdk.Line) bool { return l.Type == "done" })
	all, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var got *jssdk.RoomLine
	for _, r := range lines[jssdk.RoomLine](t, all, "room") {
		if r.RoomID == string(f.DM) && len(r.Timeline) > 0 && r.Timeline[len(r.Timeline)-1].Body == late {
			got = &r
		}
	}
	if got == nil || got.Initial || len(got.Timeline) != 1 || got.NumLive == nil || *got.NumLive != 1 {
		t.Fatalf("the late message came as %+v; want it alone in a delta, live", got)
	}
	completes := lines[jssdk.CompleteLine](t, all, "complete")
	want := []string{"DM", "Lobby", "Secrets", "Invitation"}
	if got := s.named(completes[len(completes)-1].Order...); !slices.Equal(got, want) {
		t.Errorf("after the late message the client's rooms are %v; want %v", got, want)
	}

	// Each to-device message reached the client once, in order, though it
	// asked many times: since acknowledged them.
	var ns []int
	for _, e := range lines[jssdk.ExtensionLine](t, all, "extension") {
		if e.Name != "to_device" {
			continue
		}
		var td toDeviceExt
		if err := json.Unmarshal(e.Data, &td); err != nil {
			t.Fatal(err)
		}
		for _, ev := range td.Events {
			if ev.Type != "org.example.ping" || ev.Sender != s.bob.UserID {
				t.Errorf("to-device event %+v; want Bob's ping", ev)
			}
			ns = append(ns, ev.Content.N)
		}
	}
	if !slices.Equal(ns, []int{1, 2, 3}) {
		t.Errorf("the client got to-device messages %v; want 1 2 3, each once", ns)
	}
	checkExchanges(t, lines[jssdk.HTTPLine](t, all, "http"), "10000")
}

// checkExchanges asserts each exchange succeeded and carried on from the
// last: pos and to_device since are the previous answer's.
func checkExchanges(t *testing.T, ex []jssdk.HTTPLine, timeout string) {
	t.Helper()
	if len(ex) < 2 {
		t.Fatalf("%d sliding sync exchanges; want at least 2", len(ex))
	}
	var prevPos, prevBatch string
	for i, h := range ex {
		if h.Status == 0 && strings.Contains(h.Error, "AbortError") {
			continue // the SDK's own abort, when its request changed
		}
		if h.Method != "POST" || h.Path != Path || h.Status != 200 {
			t.Errorf("exchange %d: %s %s → %d %s %s", i, h.Method, h.Path, h.Status, h.Error, h.Response)
			continue
		}
		if h.Query["pos"] != prevPos || h.Query["timeout"] != timeout {
			t.Errorf("exchange %d: query %v; want pos %q, timeout %s", i, h.Query, prevPos, timeout)
		}
		var req struct {
			Extensions map[string]map[string]any `json:"extensions"`
		}
		var resp struct {
			Pos        string `json:"pos"`
			Extensions struct {
				ToDevice *struct {
					NextBatch string `json:"next_batch"`
				} `json:"to_device"`
			} `json:"extensions"`
		}
		if err := json.Unmarshal(h.Request, &req); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(h.Response, &resp); err != nil {
			t.Fatal(err)
		}
		if td := req.Extensions["to_device"]; td != nil {
			if since, _ := td["since"].(string); since != prevBatch {
				t.Errorf("exchange %d: to_device since %q; want the last next_batch %q", i, since, prevBatch)
			}
			if resp.Extensions.ToDevice == nil || resp.Extensions.ToDevice.NextBatch == "" {
				t.Errorf("exchange %d: to_device asked, answered %s", i, h.Response)
			} else {
				prevBatch = resp.Extensions.ToDevice.NextBatch
			}
		}
		prevPos = resp.Pos
	}
}

// TestJSSDKClientOnDendrite runs the SDK as Element Web does
// (MatrixClient.startClient with the SlidingSync, its own extensions)
// against the edge in front of Dendrite, through one base URL that also
// proxies every other client API call: the Room objects a user sees have
// the rooms' names, the DM named after Bob, the invitation as an invite,
// each room's last message, and a message Bob sends while the client
// waits.
func TestJSSDKClientOnDendrite(t *testing.T) {
	t.Parallel()
	s := seedFront(t)
	f := s.f
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const late = "one more thing"
	env := s.env(s.alice)
	env["SS_MODE"] = "sdk"
	env["SS_TIMEOUT_MS"] = "10000"
	env["SS_UNTIL_BODY"] = late
	env["SS_DEADLINE_MS"] = "180000"
	env["SS_TRACE"] = "all"
	p := jssdk.Start(t, ctx, jssdk.SlidingSync, env)

	first := decodeLine[jssdk.ClientLine](t, p.Await("the SDK's rooms", 90*time.Second, func(l jssdk.Line) bool { return l.Type == "client" }))
	got := map[string]jssdk.ClientRoom{}
	var order []string
	for _, r := range first.Rooms {
		got[r.RoomID] = r
		order = append(order, r.RoomID)
	}
	if got := s.named(order...); !slices.Equal(got, s.recency()) {
		t.Errorf("the SDK's rooms by bump stamp: %v; want %v", got, s.recency())
	}
	want := map[id.RoomID]struct{ name, membership string }{
		f.Lobby: {"Lobby", "join"}, f.Secrets: {"Secrets", "join"}, f.DM: {"bob", "join"}, f.Invitation: {"Invitation", "invite"},
	}
	for room, w := range want {
		r := got[string(room)]
		if r.Name != w.name || r.Membership != w.membership {
			t.Errorf("room %s: the SDK shows %q, membership %q; want %q, %q", room, r.Name, r.Membership, w.name, w.membership)
		}
		if last := f.Last[room]; room != f.Invitation && (len(r.Timeline) == 0 || r.Timeline[len(r.Timeline)-1].Body != last) {
			t.Errorf("room %s: the SDK's timeline %+v does not end with %q", room, r.Timeline, last)
		}
	}

	// Bob writes while the client waits.
	var lastSeq int
	for _, l := range lines[jssdk.HTTPLine](t, p.Lines(), "http") {
		lastSeq = max(lastSeq, l.Seq)
	}
	p.Await("a long poll", 60*time.Second, func(l jssdk.Line) bool {
		if l.Type != "sent" {
			return false
		}
		h := decodeLine[jssdk.HTTPLine](t, l)
		return h.Seq > lastSeq && h.Path == Path && h.Query["pos"] != ""
	})
	if _, err := s.bob.Client(t, s.front.URL).SendText(ctx, f.DM, late); err != nil {
		t.Fatal(err)
	}
	p.Await("the late message", 90*time.Second, func(l jssdk.Line) bool { return l.Type == "done" })
	all, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	clients := lines[jssdk.ClientLine](t, all, "client")
	last := clients[len(clients)-1]
	if len(last.Rooms) != 4 || last.Rooms[0].RoomID != string(f.DM) {
		t.Fatalf("after Bob's message the SDK's rooms are %+v; want the DM first of 4", last.Rooms)
	}
	dm := last.Rooms[0]
	if tl := dm.Timeline; len(tl) < 2 || tl[len(tl)-1].Body != late || tl[len(tl)-2].Body != msc4186.BodyDM {
		t.Errorf("the DM's timeline in the SDK: %+v; want %q then %q", tl, msc4186.BodyDM, late)
	}
	// The SDK's other calls went through the front to Dendrite, and its
	// sliding sync requests to the service, all answered.
	var paths []string
	for _, h := range lines[jssdk.HTTPLine](t, all, "http") {
		if h.Status != 200 && !strings.Contains(h.Error, "AbortError") {
			t.Errorf("%s %s → %d %s %s", h.Method, h.Path, h.Status, h.Error, h.Response)
		}
		paths = append(paths, h.Path)
	}
	if !slices.Contains(paths, "/_matrix/client/versions") || !slices.Contains(paths, Path) {
		t.Errorf("the SDK called %v; want /versions and the sliding sync endpoint among them", paths)
	}
}

// TestJSSDKGrowsItsList: the client shows the two most recent rooms, then
// widens its list to twenty; the answer to the wider window brings the
// rooms it lacks, and not again those it has.
func TestJSSDKGrowsItsList(t *testing.T) {
	t.Parallel()
	s := seedFront(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := s.env(s.alice)
	env["SS_LISTS"] = jssdk.JSON(map[string]any{"all": map[string]any{
		"ranges": [][2]int{{0, 1}}, "timeline_limit": 1,
		"required_state": [][2]string{{"m.room.name", ""}, {"m.room.member", "$ME"}},
	}})
	env["SS_THEN"] = jssdk.JSON([]map[string]any{{"after": 1, "ranges": map[string]any{"all": [][2]int{{0, 19}}}}})
	env["SS_UNTIL_RESPONSES"] = "2"
	env["SS_DEADLINE_MS"] = "120000"
	all, err := jssdk.Run(t, ctx, jssdk.SlidingSync, env)
	if err != nil {
		t.Fatal(err)
	}
	responses := lines[jssdk.ResponseLine](t, all, "response")
	if len(responses) != 2 {
		t.Fatalf("%d responses; want 2", len(responses))
	}
	for i, want := range [][]string{{"DM", "Lobby"}, {"Invitation", "Secrets"}} {
		got := s.named(responses[i].Rooms...)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("response %d carried rooms %v; want %v", i+1, got, want)
		}
	}
	var second struct {
		Count int `json:"count"`
		Ops   []struct {
			Range   [2]int   `json:"range"`
			RoomIDs []string `json:"room_ids"`
		} `json:"ops"`
	}
	if err := json.Unmarshal(responses[1].Lists["all"], &second); err != nil {
		t.Fatal(err)
	}
	if second.Count != 4 || len(second.Ops) != 1 || second.Ops[0].Range != [2]int{0, 19} || !slices.Equal(s.named(second.Ops[0].RoomIDs...), s.recency()) {
		t.Errorf("the wider list: count %d, ops %+v (%v); want count 4, one SYNC of 0-19 with %v", second.Count, second.Ops, s.named(second.Ops[0].RoomIDs...), s.recency())
	}
	for _, r := range lines[jssdk.RoomLine](t, all, "room") {
		if !r.Initial {
			t.Errorf("room %s came as a delta in response %d; every room is new to this client", r.RoomID, r.N)
		}
	}
	completes := lines[jssdk.CompleteLine](t, all, "complete")
	if got := s.named(completes[len(completes)-1].Order...); !slices.Equal(got, s.recency()) {
		t.Errorf("the client's rooms: %v; want %v", got, s.recency())
	}
}

// TestJSSDKStartsOverOnUnknownPos: the edge restarts with its store wiped
// while the client long-polls. The client's next request carries a pos
// the new store never gave: it gets 400 M_UNKNOWN_POS, and the SDK drops
// its pos, asks again from nothing and sees every room again, whole.
func TestJSSDKStartsOverOnUnknownPos(t *testing.T) {
	t.Parallel()
	s := seedFront(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := s.env(s.alice)
	env["SS_EXTENSIONS"] = "to_device,e2ee"
	env["SS_TIMEOUT_MS"] = "20000"
	env["SS_UNTIL_RESPONSES"] = "2"
	env["SS_DEADLINE_MS"] = "150000"
	p := jssdk.Start(t, ctx, jssdk.SlidingSync, env)
	p.Await("the first response", 90*time.Second, func(l jssdk.Line) bool { return l.Type == "complete" })
	p.Await("a long poll", 60*time.Second, func(l jssdk.Line) bool {
		if l.Type != "sent" {
			return false
		}
		return decodeLine[jssdk.HTTPLine](t, l).Query["pos"] != ""
	})
	// The new edge has a store of its own: what the old one gave is
	// unknown to it. The old one stops, ending the long poll.
	wiped := openService(t, s.h.den.URL, filepath.Join(t.TempDir(), "wiped.db"), "")
	s.front.swap(wiped)
	s.h.svc.Close()

	p.Await("the second response", 120*time.Second, func(l jssdk.Line) bool { return l.Type == "done" })
	all, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var unknown bool
	for _, l := range lines[jssdk.LifecycleLine](t, all, "lifecycle") {
		unknown = unknown || (l.Error.Status == 400 && l.Error.Errcode == "M_UNKNOWN_POS")
	}
	if !unknown {
		t.Fatalf("the client never got M_UNKNOWN_POS: lifecycle %s", all)
	}
	// After the refusal the SDK asked without pos, and was answered.
	ex := lines[jssdk.HTTPLine](t, all, "http")
	i := slices.IndexFunc(ex, func(h jssdk.HTTPLine) bool { return h.Status == 400 })
	if i < 0 || i+1 >= len(ex) || ex[i].Query["pos"] == "" || ex[i+1].Query["pos"] != "" || ex[i+1].Status != 200 {
		t.Fatalf("around the refusal the exchanges were %+v", ex)
	}
	rooms := map[string]jssdk.RoomLine{}
	for _, r := range lines[jssdk.RoomLine](t, all, "room") {
		if r.N == 2 {
			rooms[r.RoomID] = r
		}
	}
	if len(rooms) != 4 {
		t.Fatalf("after starting over the client got %d rooms; want all 4", len(rooms))
	}
	checkSeededRooms(t, s, rooms)
	completes := lines[jssdk.CompleteLine](t, all, "complete")
	if got := completes[len(completes)-1]; !slices.Equal(s.named(got.Order...), s.recency()) || got.Counts["all"] != 4 {
		t.Errorf("after starting over the client's rooms are %v (count %d); want %v", s.named(got.Order...), got.Counts["all"], s.recency())
	}
}
