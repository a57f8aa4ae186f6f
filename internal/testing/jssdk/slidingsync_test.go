package jssdk

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/wellknownd/wellknownd/internal/testing/msc4186"
	"github.com/wellknownd/wellknownd/internal/testing/synapsetest"
)

var capture = flag.Bool("capture", false, "write the sliding sync exchanges seen to testdata/synapse-*.json")

// seeded is a Synapse with msc4186.Seed's rooms, and Alice's and Bob's
// sessions.
func seeded(t *testing.T) (*synapsetest.Synapse, *msc4186.Fixture, msc4186.Account, msc4186.Account) {
	t.Helper()
	s := synapsetest.Start(t, synapsetest.Options{ServerName: "synapse.test"})
	var alice, bob msc4186.Account
	alice.UserID, alice.AccessToken, alice.DeviceID = s.Register(t, "alice", "alice's password", false)
	bob.UserID, bob.AccessToken, bob.DeviceID = s.Register(t, "bob", "bob's password", false)
	return s, msc4186.Seed(t, s.BaseURL, alice, bob), alice, bob
}

// TestSlidingSyncDriver runs matrix-js-sdk's SlidingSync (raw mode, every
// extension) against Synapse's native MSC4186 as Alice: the first
// response gives her four rooms in recency order with their names, last
// messages, the encrypted room's m.room.encryption and the invitation's
// stripped state; then a message Bob sends while the client long-polls
// reaches it, and the room moves to the top.
func TestSlidingSyncDriver(t *testing.T) {
	s, f, alice, bob := seeded(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const late = "are you there?"
	env := SlidingSyncEnv(s.BaseURL, alice.UserID, alice.AccessToken, alice.DeviceID)
	env["SS_EXTENSIONS"] = "to_device,e2ee,account_data,receipts,typing"
	env["SS_TIMEOUT_MS"] = "30000"
	env["SS_UNTIL_BODY"] = late
	env["SS_DEADLINE_MS"] = "120000"
	p := Start(t, ctx, SlidingSync, env)

	first := p.Await("the first response processed", 90*time.Second, func(l Line) bool { return l.Type == "complete" })
	lines := p.Lines()
	var done CompleteLine
	must(t, first.Decode(&done))
	if !slices.Equal(done.Order, ids(f.Recency)) || done.Counts["all"] != 4 {
		t.Fatalf("after the first response the client has %v (count %d); want %v, 4\n%s", done.Order, done.Counts["all"], f.Recency, p.tail())
	}
	rooms := map[string]RoomLine{}
	for _, r := range of[RoomLine](t, lines, "room") {
		rooms[r.RoomID] = r
	}
	for room, name := range f.Names {
		if rooms[string(room)].Name != name || !rooms[string(room)].Initial {
			t.Errorf("room %s: %+v; want initial, named %q", room, rooms[string(room)], name)
		}
	}
	for _, room := range []id.RoomID{f.Lobby, f.DM, f.Secrets} {
		if tl := rooms[string(room)].Timeline; len(tl) != 1 || tl[0].Body != f.Last[room] {
			t.Errorf("room %s: timeline %+v; want its last message %q", room, tl, f.Last[room])
		}
	}
	dm := rooms[string(f.DM)]
	if !dm.IsDM || dm.Name != "" || len(dm.Heroes) != 1 || dm.Heroes[0].UserID != bob.UserID {
		t.Errorf("the DM: is_dm %v, name %q, heroes %+v; want a DM without a name, Bob its hero", dm.IsDM, dm.Name, dm.Heroes)
	}
	if !hasState(rooms[string(f.Secrets)].RequiredState, "m.room.encryption", "") {
		t.Errorf("Secrets' required_state %+v lacks m.room.encryption", rooms[string(f.Secrets)].RequiredState)
	}
	inv := rooms[string(f.Invitation)]
	if len(inv.Timeline) != 0 || !hasState(inv.InviteState, "m.room.member", alice.UserID) || !hasState(inv.InviteState, "m.room.name", "") {
		t.Errorf("the invitation: timeline %+v, invite_state %+v; want Alice's invite and the room's name, no timeline", inv.Timeline, inv.InviteState)
	}
	// Every extension asked for answered in the first response.
	resp := of[ResponseLine](t, lines, "response")[0]
	for _, ext := range []string{"to_device", "e2ee", "account_data", "receipts", "typing"} {
		if _, ok := resp.Extensions[ext]; !ok {
			t.Errorf("the first response has no %s extension: %s", ext, jsonOf(resp.Extensions))
		}
	}

	// Bob writes while the client waits in its long poll: the request
	// after the first response, which carries its pos.
	p.Await("the long poll", 30*time.Second, func(l Line) bool { return l.Type == "sent" && pollSent(t, l) })
	if _, err := bob.Client(t, s.BaseURL).SendText(ctx, f.DM, late); err != nil {
		t.Fatal(err)
	}
	p.Await("the driver to see the message", 90*time.Second, func(l Line) bool { return l.Type == "done" })
	all, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var got *RoomLine
	for _, r := range of[RoomLine](t, all, "room") {
		if r.RoomID == string(f.DM) && r.N > 1 && len(r.Timeline) > 0 && r.Timeline[len(r.Timeline)-1].Body == late {
			got = &r
		}
	}
	if got == nil || got.Initial {
		t.Fatalf("the DM's new message came as %+v; want it in a later response, not initial", got)
	}
	completes := of[CompleteLine](t, all, "complete")
	if last := completes[len(completes)-1]; last.Order[0] != string(f.DM) {
		t.Errorf("after the new message the client's rooms are %v; want the DM first", last.Order)
	}
	checkRequests(t, of[HTTPLine](t, all, "http"))
	if *capture {
		writeCaptures(t, of[HTTPLine](t, all, "http"))
	}
}

// pollSent is true for a sent line of a request with a pos.
func pollSent(t *testing.T, l Line) bool {
	var h HTTPLine
	must(t, l.Decode(&h))
	return h.N >= 1 && h.Query["pos"] != ""
}

// checkRequests asserts how js-sdk 37.5.0 asks: pos and timeout in the
// query string, pos the last answer's, the lists' sticky parameters sent
// every time, and the to_device extension acknowledging next_batch.
func checkRequests(t *testing.T, ex []HTTPLine) {
	t.Helper()
	if len(ex) < 2 {
		t.Fatalf("%d sliding sync exchanges; want at least 2", len(ex))
	}
	var prevPos, prevBatch string
	for i, h := range ex {
		if h.Method != "POST" || h.Path != msc4186.Path || h.Status != 200 {
			t.Errorf("exchange %d: %s %s → %d %s", i, h.Method, h.Path, h.Status, h.Error)
			continue
		}
		if h.Query["pos"] != prevPos || h.Query["timeout"] != "30000" {
			t.Errorf("exchange %d: query %v; want pos %q, timeout 30000", i, h.Query, prevPos)
		}
		var req struct {
			Lists      map[string]map[string]any `json:"lists"`
			Extensions map[string]map[string]any `json:"extensions"`
		}
		var resp struct {
			Pos        string `json:"pos"`
			Extensions struct {
				ToDevice struct {
					NextBatch string `json:"next_batch"`
				} `json:"to_device"`
			} `json:"extensions"`
		}
		must(t, json.Unmarshal(h.Request, &req))
		must(t, json.Unmarshal(h.Response, &resp))
		if l := req.Lists["all"]; l["ranges"] == nil || l["timeline_limit"] == nil || l["required_state"] == nil {
			t.Errorf("exchange %d: list all is %v; want ranges, timeline_limit and required_state every time", i, l)
		}
		if since, _ := req.Extensions["to_device"]["since"].(string); since != prevBatch {
			t.Errorf("exchange %d: to_device since %q; want the last next_batch %q", i, since, prevBatch)
		}
		prevPos, prevBatch = resp.Pos, resp.Extensions.ToDevice.NextBatch
	}
}

// writeCaptures saves the first exchange and the one that brought the new
// message as reference bodies for the edge's implementation.
func writeCaptures(t *testing.T, ex []HTTPLine) {
	t.Helper()
	for name, h := range map[string]HTTPLine{"synapse-initial.json": ex[0], "synapse-longpoll.json": ex[len(ex)-1]} {
		b, err := json.MarshalIndent(h, "", "  ")
		must(t, err)
		must(t, os.WriteFile(filepath.Join("testdata", name), append(b, '\n'), 0o644))
	}
}

// TestSlidingSyncClientMode runs the driver as Element Web runs the SDK
// (MatrixClient.startClient with the SlidingSync): its Room objects show
// the names a user sees, the DM named after Bob, the invitation as an
// invite, and each room's last message.
func TestSlidingSyncClientMode(t *testing.T) {
	s, f, alice, _ := seeded(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := SlidingSyncEnv(s.BaseURL, alice.UserID, alice.AccessToken, alice.DeviceID)
	env["SS_MODE"] = "sdk"
	env["SS_UNTIL_RESPONSES"] = "1"
	lines, err := Run(t, ctx, SlidingSync, env)
	if err != nil {
		t.Fatal(err)
	}
	clients := of[ClientLine](t, lines, "client")
	if len(clients) == 0 {
		t.Fatalf("no client line:\n%s", lines)
	}
	got := map[string]ClientRoom{}
	var order []string
	for _, r := range clients[len(clients)-1].Rooms {
		got[r.RoomID] = r
		order = append(order, r.RoomID)
	}
	if !slices.Equal(order, ids(f.Recency)) {
		t.Errorf("the SDK's rooms by bump stamp: %v; want %v", order, f.Recency)
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
	// The SDK's own extensions went up with the first request.
	h := of[HTTPLine](t, lines, "http")[0]
	var req struct {
		Extensions map[string]json.RawMessage `json:"extensions"`
	}
	must(t, json.Unmarshal(h.Request, &req))
	for _, ext := range []string{"to_device", "account_data", "typing", "receipts"} {
		if _, ok := req.Extensions[ext]; !ok {
			t.Errorf("the SDK's first request has no %s extension: %s", ext, h.Request)
		}
	}
}

func of[T any](t *testing.T, lines []Line, typ string) []T {
	t.Helper()
	v, err := Of[T](lines, typ)
	must(t, err)
	return v
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func ids(rooms []id.RoomID) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = string(r)
	}
	return out
}

func hasState(events []Event, typ, stateKey string) bool {
	for _, e := range events {
		if e.Type == typ && e.StateKey != nil && *e.StateKey == stateKey {
			return true
		}
	}
	return false
}
