package synapsetest

import (
	"context"
	"errors"
	"net/http/httptrace"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/wellknownd/wellknownd/internal/testing/msc4186"
)

// TestSlidingSync starts a Synapse, seeds it with msc4186.Seed and reads
// it back through Synapse's native MSC4186 as Alice: her rooms in recency
// order with their names and last messages, the invitation's stripped
// state, a message that arrives during a long poll, and the errors a
// client gets for a pos that is not its own.
func TestSlidingSync(t *testing.T) {
	s := Start(t, Options{ServerName: "synapse.test"})
	aliceID, aliceToken, aliceDevice := s.Register(t, "alice", "alice's password", false)
	bobID, bobToken, bobDevice := s.Register(t, "bob", "bob's password", true)
	if aliceID != "@alice:synapse.test" || aliceToken == "" || aliceDevice == "" {
		t.Fatalf("Register = %q %q %q", aliceID, aliceToken, aliceDevice)
	}
	alice := msc4186.Account{UserID: aliceID, AccessToken: aliceToken, DeviceID: aliceDevice}
	bob := msc4186.Account{UserID: bobID, AccessToken: bobToken, DeviceID: bobDevice}
	f := msc4186.Seed(t, s.BaseURL, alice, bob)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := &msc4186.Conn{BaseURL: s.BaseURL, Token: aliceToken}
	req := msc4186.Request{Lists: map[string]msc4186.List{"all": {
		Ranges:           [][2]int{{0, 19}},
		RoomSubscription: msc4186.RoomSubscription{TimelineLimit: 1, RequiredState: [][2]string{{"m.room.encryption", ""}}},
	}}}
	first, err := conn.Sync(ctx, 0, req)
	if err != nil {
		t.Fatal(err)
	}
	// The range covers the whole list: Synapse sends it unsorted, and the
	// client orders by bump_stamp.
	list := first.Lists["all"]
	if list.Count != 4 || !slices.Equal(first.ByBumpStamp(), ids(f.Recency)) {
		t.Fatalf("list all: count %d, by bump_stamp %v; want 4, %v\n%s", list.Count, first.ByBumpStamp(), f.Recency, first.Raw)
	}
	// A window smaller than the list is sorted by recency. (A connection
	// of its own: a request without pos restarts the connection of its
	// conn_id, and the first one's pos would be forgotten.)
	top, err := (&msc4186.Conn{BaseURL: s.BaseURL, Token: aliceToken}).Sync(ctx, 0, msc4186.Request{ConnID: "top", Lists: map[string]msc4186.List{"top": {
		Ranges: [][2]int{{0, 1}}, RoomSubscription: msc4186.RoomSubscription{TimelineLimit: 1},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := top.Lists["top"]; got.Count != 4 || !slices.Equal(got.Order(), ids(f.Recency[:2])) || len(top.Rooms) != 2 {
		t.Fatalf("list top (0-1): count %d, order %v, %d rooms; want 4, %v, 2 rooms", got.Count, got.Order(), len(top.Rooms), f.Recency[:2])
	}
	for room, name := range f.Names {
		if got := first.Rooms[string(room)].Name; got != name {
			t.Errorf("room %s named %q, want %q", room, got, name)
		}
	}
	for _, room := range []id.RoomID{f.Lobby, f.DM, f.Secrets} {
		r := first.Rooms[string(room)]
		if !r.Initial || len(r.Timeline) != 1 || r.Timeline[0].Body() != f.Last[room] {
			t.Errorf("room %s: initial %v, timeline %+v; want its last message %q", room, r.Initial, r.Timeline, f.Last[room])
		}
	}
	if enc := first.Rooms[string(f.Secrets)].RequiredState; len(enc) != 1 || enc[0].Type != "m.room.encryption" {
		t.Errorf("Secrets' required_state = %+v, want its m.room.encryption", enc)
	}
	inv := first.Rooms[string(f.Invitation)]
	if len(inv.Timeline) != 0 || !hasState(inv.InviteState, "m.room.member", aliceID) || !hasState(inv.InviteState, "m.room.name", "") {
		t.Errorf("the invitation: timeline %+v, invite_state %+v; want no timeline, Alice's invite and the name", inv.Timeline, inv.InviteState)
	}

	// A long poll that a message in the DM ends.
	type result struct {
		resp *msc4186.Response
		err  error
	}
	done := make(chan result, 1)
	wrote := make(chan struct{})
	began := time.Now()
	go func() {
		// The message is sent once the poll is on the wire: Synapse is then
		// waiting, or about to, and finds it either way.
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
		r, err := conn.Sync(httptrace.WithClientTrace(ctx, trace), 30*time.Second, req)
		done <- result{r, err}
	}()
	select {
	case <-wrote:
	case r := <-done:
		t.Fatalf("the long poll ended before it was sent: %v", r.err)
	}
	if _, err := bob.Client(t, s.BaseURL).SendText(ctx, f.DM, "are you there?"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	dm, ok := r.resp.Rooms[string(f.DM)]
	if !ok || len(dm.Timeline) != 1 || dm.Timeline[0].Body() != "are you there?" || dm.Initial {
		t.Fatalf("after %v the long poll answered %s; want the DM's new message, not initial", time.Since(began), r.resp.Raw)
	}
	if got, before := dm.BumpStamp, first.Rooms[string(f.Lobby)].BumpStamp; got <= before {
		t.Errorf("after the new message the DM's bump_stamp is %d, not above the Lobby's %d", got, before)
	}

	// Bob's connection cannot go on from Alice's pos, and a pos that is
	// not a token at all is refused. (A request without pos restarts the
	// connection, but on SQLite the new one can be given the same
	// position number, so the old pos may go on working: not asserted.)
	for _, c := range []struct{ pos, token, errcode string }{
		{conn.Pos, bobToken, "M_UNKNOWN_POS"},
		{"not-a-pos", aliceToken, "M_UNKNOWN"},
	} {
		_, err := (&msc4186.Conn{BaseURL: s.BaseURL, Token: c.token, Pos: c.pos}).Sync(ctx, 0, req)
		var e *msc4186.Error
		if !errors.As(err, &e) || e.Status != 400 || e.Errcode != c.errcode {
			t.Errorf("pos %q: %v; want 400 %s", c.pos, err, c.errcode)
		}
	}
}

// TestStartTwice runs two Synapses side by side: each has its own port,
// database and secret, and a user of one is unknown to the other.
func TestStartTwice(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{ServerName: "other.test"})
	if a.BaseURL == b.BaseURL || a.Dir == b.Dir || a.Secret == b.Secret {
		t.Fatalf("two Synapses share %s / %s / a secret", a.BaseURL, a.Dir)
	}
	_, token, _ := a.Register(t, "carol", "carol's password", false)
	_, err := (&msc4186.Conn{BaseURL: b.BaseURL, Token: token}).Sync(context.Background(), 0, msc4186.Request{})
	var e *msc4186.Error
	if !errors.As(err, &e) || e.Status != 401 {
		t.Fatalf("a token of one Synapse on the other: %v; want 401", err)
	}
	if !strings.HasPrefix(a.Dir, Root(t)) {
		t.Fatalf("run directory %s is not inside the root", a.Dir)
	}
}

func ids(rooms []id.RoomID) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = string(r)
	}
	return out
}

func hasState(events []msc4186.Event, typ, stateKey string) bool {
	for _, e := range events {
		if e.Type == typ && e.StateKey != nil && *e.StateKey == stateKey {
			return true
		}
	}
	return false
}
