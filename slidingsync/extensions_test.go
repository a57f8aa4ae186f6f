package slidingsync

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

type toDeviceExt struct {
	NextBatch string `json:"next_batch"`
	Events    []struct {
		Type    string `json:"type"`
		Sender  string `json:"sender"`
		Content struct {
			N int `json:"n"`
		} `json:"content"`
	} `json:"events"`
}

func sendToDevice(t *testing.T, from *mautrix.Client, to *mautrix.Client, n int) {
	t.Helper()
	_, err := from.SendToDevice(context.Background(), event.Type{Type: "org.example.ping", Class: event.ToDeviceEventType}, &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{to.UserID: {to.DeviceID: {Raw: map[string]any{"n": n}}}},
	})
	if err != nil {
		t.Fatalf("sending to-device %d: %v", n, err)
	}
}

// TestToDeviceExactlyOnceAcrossRestart: to-device messages are stored
// before the poll that acknowledges them to Dendrite, so an edge that
// restarts before the client took them still delivers them; and each is
// delivered until the client acknowledges it with since, never after.
func TestToDeviceExactlyOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	bob := h.user(t, "bob")
	path := filepath.Join(t.TempDir(), "restart.db")
	svc := openService(t, h.den.URL, path, "")
	base := serveService(t, svc)
	req := func(since string) map[string]any {
		return map[string]any{"extensions": map[string]any{"to_device": map[string]any{"enabled": true, "since": since}}}
	}
	got := func(base, pos, since string) (string, *toDeviceExt) {
		t.Helper()
		status, a := ssync(t, base, bob.AccessToken, pos, 20*time.Second, req(since))
		if status != 200 {
			t.Fatalf("%d %s %s", status, a.Errcode, a.Error)
		}
		var td toDeviceExt
		json.Unmarshal(a.Extensions["to_device"], &td)
		return a.Pos, &td
	}
	pos, td := got(base, "", "")
	for n := 1; n <= 3; n++ {
		sendToDevice(t, alice, bob, n)
	}
	var ns []int
	since := td.NextBatch
	for len(ns) < 3 {
		// Not acknowledged: asked again from the same since, they come
		// again, the same.
		p, td := got(base, pos, since)
		pos = p
		for _, e := range td.Events {
			ns = append(ns, e.Content.N)
		}
		if len(ns) > 0 && len(ns) < 3 {
			ns = nil
		}
	}
	if !slices.Equal(ns, []int{1, 2, 3}) {
		t.Fatalf("to-device messages %v, want 1 2 3", ns)
	}

	// The edge restarts while the messages are stored but unacknowledged
	// by the client: Dendrite has already been told they arrived.
	svc.Close()
	svc2 := openService(t, h.den.URL, path, "")
	base2 := serveService(t, svc2)
	p2, td2 := got(base2, pos, since)
	var again []int
	for _, e := range td2.Events {
		again = append(again, e.Content.N)
	}
	if !slices.Equal(again, []int{1, 2, 3}) {
		t.Fatalf("after a restart, unacknowledged to-device messages %v, want 1 2 3", again)
	}
	// Acknowledged, they are gone; a new one comes alone.
	sendToDevice(t, alice, bob, 4)
	var after []int
	ack := td2.NextBatch
	deadline := time.Now().Add(60 * time.Second)
	for len(after) == 0 && time.Now().Before(deadline) {
		p, td := got(base2, p2, ack)
		p2 = p
		for _, e := range td.Events {
			after = append(after, e.Content.N)
		}
		if td.NextBatch != "" {
			ack = td.NextBatch
		}
	}
	if !slices.Equal(after, []int{4}) {
		t.Fatalf("after acknowledging 1-3: %v, want only 4", after)
	}
}

// TestE2EEAndAccountDataAndEphemeral: key counts, device list changes,
// account data, receipts and typing reach the client through their
// extensions.
func TestE2EEAndAccountDataAndEphemeral(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	bob := h.user(t, "bob")
	ctx := context.Background()
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Shared", Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	msg := send(t, alice, room, "read me")
	exts := map[string]any{
		"e2ee": map[string]any{"enabled": true}, "account_data": map[string]any{"enabled": true},
		"receipts": map[string]any{"enabled": true}, "typing": map[string]any{"enabled": true},
	}
	req := map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 1}}, "extensions": exts}
	_, a := ssync(t, h.url, bob.AccessToken, "", 0, req)
	pos := a.Pos

	// bob's device uploads one-time keys: its count comes back.
	otks := map[id.KeyID]mautrix.OneTimeKey{}
	for i := range 3 {
		otks[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, fmt.Sprintf("AAAA%d", i))] = mautrix.OneTimeKey{Key: id.Curve25519(fmt.Sprintf("key%d", i))}
	}
	if _, err := bob.UploadKeys(ctx, &mautrix.ReqUploadKeys{OneTimeKeys: otks}); err != nil {
		t.Fatal(err)
	}
	// alice logs in a new device with keys: bob shares a room with her,
	// so her devices changed for him.
	alice2 := h.login(t, "alice")
	if _, err := alice2.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: &mautrix.DeviceKeys{
		UserID: alice2.UserID, DeviceID: alice2.DeviceID, Algorithms: []id.Algorithm{id.AlgorithmOlmV1},
		Keys: mautrix.KeyMap{id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, alice2.DeviceID): "curvekey", id.NewDeviceKeyID(id.KeyAlgorithmEd25519, alice2.DeviceID): "edkey"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetRoomAccountData(ctx, room, "org.example.draft", map[string]any{"text": "half a thought"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendReceipt(ctx, room, msg, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.UserTyping(ctx, room, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < 6 && time.Now().Before(deadline) {
		status, a := ssync(t, h.url, bob.AccessToken, pos, 10*time.Second, req)
		if status != 200 {
			t.Fatalf("%d %s", status, a.Error)
		}
		pos = a.Pos
		var e2ee struct {
			Lists struct {
				Changed []string `json:"changed"`
			} `json:"device_lists"`
			OTK map[string]int `json:"device_one_time_keys_count"`
		}
		json.Unmarshal(a.Extensions["e2ee"], &e2ee)
		if e2ee.OTK["signed_curve25519"] == 3 {
			seen["otk"] = true
		}
		if slices.Contains(e2ee.Lists.Changed, alice.UserID.String()) {
			seen["device_lists"] = true
		}
		ad := string(a.Extensions["account_data"])
		if strings.Contains(ad, "dark") {
			seen["global account data"] = true
		}
		if strings.Contains(ad, "half a thought") && strings.Contains(ad, room.String()) {
			seen["room account data"] = true
		}
		if r := string(a.Extensions["receipts"]); strings.Contains(r, msg.String()) && strings.Contains(r, alice.UserID.String()) {
			seen["receipt"] = true
		}
		if ty := string(a.Extensions["typing"]); strings.Contains(ty, alice.UserID.String()) {
			seen["typing"] = true
		}
	}
	if len(seen) < 6 {
		t.Fatalf("seen only %v", seen)
	}
}
