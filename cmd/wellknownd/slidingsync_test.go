package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/slidingsync"
)

// TestSlidingSyncThroughTheEdge: the daemon in front of the real Dendrite
// tells clients it serves MSC4186, answers it from its pollers, and wakes
// a waiting request when a message arrives; with sliding_sync off, both
// are Dendrite's again, after a reload.
func TestSlidingSyncThroughTheEdge(t *testing.T) {
	den := dendritetest.Start(t, dendritetest.Options{ServerName: "example.com"})
	yaml := edgeConfig(den.URL)
	d := startDaemon(t, yaml, "http", "admin")
	alice := loggedInClient(t, d, den, "alice")
	ctx := context.Background()
	hc := alice.Client

	advertised := func() bool {
		t.Helper()
		resp, err := hc.Get("https://matrix.example.com/_matrix/client/versions")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct {
			Versions []string        `json:"versions"`
			Unstable map[string]bool `json:"unstable_features"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Versions) == 0 {
			t.Fatalf("/versions: %v %+v", err, v)
		}
		return v.Unstable[slidingsync.UnstableFeature]
	}
	if !advertised() {
		t.Fatal("/versions through the edge does not advertise MSC4186")
	}

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Through the edge", Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "first"); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		Pos   string `json:"pos"`
		Lists map[string]struct {
			Count int `json:"count"`
		} `json:"lists"`
		Rooms map[string]struct {
			Name     string            `json:"name"`
			Timeline []json.RawMessage `json:"timeline"`
		} `json:"rooms"`
		Errcode string `json:"errcode"`
	}
	ss := func(pos string, timeout time.Duration) (int, answer) {
		t.Helper()
		body := `{"lists":{"all":{"ranges":[[0,9]],"timeline_limit":1,"required_state":[["m.room.name",""]]}}}`
		url := "https://matrix.example.com" + slidingsync.Path + "?timeout=" + strconv.Itoa(int(timeout.Milliseconds()))
		if pos != "" {
			url += "&pos=" + pos
		}
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var a answer
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("%d %s", resp.StatusCode, raw)
		}
		return resp.StatusCode, a
	}
	status, a := ss("", 0)
	r := a.Rooms[room.RoomID.String()]
	if status != 200 || a.Lists["all"].Count != 1 || r.Name != "Through the edge" || len(r.Timeline) != 1 || !bytes.Contains(r.Timeline[0], []byte(`"first"`)) {
		t.Fatalf("first sliding sync through the edge: %d %+v", status, a)
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		alice.SendText(ctx, room.RoomID, "second")
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, a2 := ss(a.Pos, 20*time.Second)
		if tl := a2.Rooms[room.RoomID.String()].Timeline; len(tl) > 0 && bytes.Contains(tl[len(tl)-1], []byte(`"second"`)) {
			break
		}
		if a2.Errcode != "" || time.Now().After(deadline) {
			t.Fatalf("the message never woke the waiting request: %+v", a2)
		}
		a = a2
	}

	// Off, after a reload: /versions is Dendrite's, and so is the path
	// (Dendrite does not know it).
	if err := os.WriteFile(d.configPath, []byte(strings.Replace(yaml, "upstream:", "sliding_sync:\n  enabled: false\nupstream:", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if b := readBody(t, d.do("POST", "admin", "localhost", "/reload")); b != "reloaded\n" {
		t.Fatalf("reload: %q", b)
	}
	if advertised() {
		t.Fatal("/versions still advertises MSC4186 with sliding_sync off")
	}
	status, a = ss("", 0)
	if status != 404 || !slices.Contains([]string{"M_UNRECOGNIZED", "M_NOT_FOUND"}, a.Errcode) {
		t.Fatalf("with sliding_sync off the path should be Dendrite's 404: %d %+v", status, a)
	}
}
