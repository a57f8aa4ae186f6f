package msc4186

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Account is a logged-in user of a homeserver.
type Account struct {
	UserID, AccessToken, DeviceID string
}

// Client is a mautrix client for a on the homeserver at baseURL.
func (a Account) Client(t testing.TB, baseURL string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(baseURL, id.UserID(a.UserID), a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	c.DeviceID = id.DeviceID(a.DeviceID)
	return c
}

// Fixture is the rooms Seed made, as Alice sees them.
type Fixture struct {
	// Lobby is a private room Alice made, named "Lobby".
	Lobby id.RoomID
	// Secrets is an encrypted room (m.room.encryption in its initial
	// state) Alice made, named "Secrets".
	Secrets id.RoomID
	// DM is Alice's direct chat with Bob: no name, is_direct, and in
	// Alice's m.direct account data.
	DM id.RoomID
	// Invitation is Bob's room "Invitation", to which Alice is invited and
	// has not answered.
	Invitation id.RoomID
	// Recency is Alice's rooms, the most recently active first: what a
	// list sorted by recency shows.
	Recency []id.RoomID
	// Last is each room's last message body.
	Last map[id.RoomID]string
	// Names is each named room's name.
	Names map[id.RoomID]string
}

// The bodies Seed sends, in order.
const (
	BodyInvitation = "welcome, once you accept"
	BodySecrets    = "a secret (sent in the clear: the server does not care)"
	BodyLobby1     = "hello lobby"
	BodyDM         = "hi Alice, it is Bob"
	BodyLobby2     = "lobby again, last of all"
)

// Seed makes the rooms of a Fixture on the homeserver at baseURL, through
// its client API: the same calls on Synapse and on Dendrite, so that what
// each serves about them can be compared. The messages are sent in the
// order of the Body constants, each after the previous one is stored, so
// the rooms' recency is, most recent first: Lobby, DM, Secrets,
// Invitation.
func Seed(t testing.TB, baseURL string, alice, bob Account) *Fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := alice.Client(t, baseURL), bob.Client(t, baseURL)
	f := &Fixture{Last: map[id.RoomID]string{}, Names: map[id.RoomID]string{}}
	create := func(c *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
		t.Helper()
		resp, err := c.CreateRoom(ctx, req)
		if err != nil {
			t.Fatalf("creating room %q: %v", req.Name, err)
		}
		if req.Name != "" {
			f.Names[resp.RoomID] = req.Name
		}
		return resp.RoomID
	}
	send := func(c *mautrix.Client, room id.RoomID, body string) {
		t.Helper()
		if _, err := c.SendText(ctx, room, body); err != nil {
			t.Fatalf("sending %q: %v", body, err)
		}
		f.Last[room] = body
	}

	f.Invitation = create(b, &mautrix.ReqCreateRoom{Name: "Invitation", Preset: "private_chat"})
	send(b, f.Invitation, BodyInvitation)
	if _, err := b.InviteUser(ctx, f.Invitation, &mautrix.ReqInviteUser{UserID: id.UserID(alice.UserID)}); err != nil {
		t.Fatalf("inviting Alice: %v", err)
	}

	empty := ""
	f.Secrets = create(a, &mautrix.ReqCreateRoom{Name: "Secrets", Preset: "private_chat", InitialState: []*event.Event{{
		Type: event.StateEncryption, StateKey: &empty,
		Content: event.Content{Raw: map[string]any{"algorithm": string(id.AlgorithmMegolmV1)}},
	}}})
	send(a, f.Secrets, BodySecrets)

	f.Lobby = create(a, &mautrix.ReqCreateRoom{Name: "Lobby", Preset: "private_chat"})
	send(a, f.Lobby, BodyLobby1)

	f.DM = create(a, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{id.UserID(bob.UserID)}})
	if err := a.SetAccountData(ctx, event.AccountDataDirectChats.Type, map[string][]id.RoomID{bob.UserID: {f.DM}}); err != nil {
		t.Fatalf("setting m.direct: %v", err)
	}
	if _, err := b.JoinRoomByID(ctx, f.DM); err != nil {
		t.Fatalf("Bob joining the DM: %v", err)
	}
	send(b, f.DM, BodyDM)

	send(a, f.Lobby, BodyLobby2)
	f.Recency = []id.RoomID{f.Lobby, f.DM, f.Secrets, f.Invitation}
	return f
}
