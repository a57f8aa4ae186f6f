package slidingsync

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// TestRequestsAreBoundToTheirDevice: a position works only for the device
// it was given to, every refusal is a Matrix error a client understands,
// and a request's size is bounded.
func TestRequestsAreBoundToTheirDevice(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	bob := h.user(t, "bob")
	createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Private to alice", Preset: "private_chat"})
	list := map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 1}}}
	_, a := ssync(t, h.url, alice.AccessToken, "", 0, list)
	if a.Lists["l"].Count != 1 {
		t.Fatalf("alice's list: %+v", a.Lists)
	}
	// bob with alice's position: refused, and nothing of hers.
	status, b := ssync(t, h.url, bob.AccessToken, a.Pos, 0, list)
	if status != 400 || b.Errcode != "M_UNKNOWN_POS" || len(b.Rooms) != 0 {
		t.Fatalf("bob with alice's pos: %d %s rooms %d", status, b.Errcode, len(b.Rooms))
	}
	// alice's other device is another device: its own positions only.
	alice2 := h.login(t, "alice")
	if status, b := ssync(t, h.url, alice2.AccessToken, a.Pos, 0, list); status != 400 || b.Errcode != "M_UNKNOWN_POS" {
		t.Fatalf("alice's second device with the first's pos: %d %s", status, b.Errcode)
	}
	// Another conn_id is another connection.
	other := map[string]any{"conn_id": "other", "lists": list["lists"]}
	if status, b := ssync(t, h.url, alice.AccessToken, a.Pos, 0, other); status != 400 || b.Errcode != "M_UNKNOWN_POS" {
		t.Fatalf("another conn_id with the pos: %d %s", status, b.Errcode)
	}
	for _, c := range []struct {
		name, token, pos, body string
		status                 int
		errcode                string
	}{
		{"malformed pos", alice.AccessToken, "garbage", `{}`, 400, "M_UNKNOWN"},
		{"no token", "", "", `{}`, 401, "M_MISSING_TOKEN"},
		{"unknown token", "syt_not_a_token", "", `{}`, 401, "M_UNKNOWN_TOKEN"},
		{"not JSON", alice.AccessToken, "", `{"lists":`, 400, "M_NOT_JSON"},
		{"wrong shape", alice.AccessToken, "", `{"lists":[1,2]}`, 400, "M_BAD_JSON"},
		{"reversed range", alice.AccessToken, "", `{"lists":{"l":{"ranges":[[5,1]]}}}`, 400, "M_INVALID_PARAM"},
		{"window too wide", alice.AccessToken, "", `{"lists":{"l":{"ranges":[[0,50000]]}}}`, 400, "M_INVALID_PARAM"},
		{"too many lists", alice.AccessToken, "", manyLists(40), 400, "M_INVALID_PARAM"},
		{"bad state pair", alice.AccessToken, "", `{"room_subscriptions":{"!a:b":{"required_state":[["m.room.name"]]}}}`, 400, "M_INVALID_PARAM"},
		{"to-device since ahead", alice.AccessToken, "", `{"extensions":{"to_device":{"enabled":true,"since":"99999"}}}`, 400, "M_INVALID_PARAM"},
		{"body too large", alice.AccessToken, "", `{"conn_id":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "M_TOO_LARGE"},
	} {
		req, _ := http.NewRequest(http.MethodPost, h.url+Path+"?pos="+c.pos, strings.NewReader(c.body))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(body.String(), `"errcode":"`+c.errcode+`"`) {
			t.Errorf("%s: %d %s, want %d %s", c.name, resp.StatusCode, body.String(), c.status, c.errcode)
		}
	}
}

func manyLists(n int) string {
	var b strings.Builder
	b.WriteString(`{"lists":{`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"l` + strings.Repeat("x", i) + `":{"ranges":[[0,1]]}`)
	}
	b.WriteString("}}")
	return b.String()
}

// TestRevokedTokenStopsItsPoller: logging out ends the waiting request
// with M_UNKNOWN_TOKEN and stops the device's poller, and the token is
// refused after.
func TestRevokedTokenStopsItsPoller(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	token := alice.AccessToken
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Soon gone", Preset: "private_chat"})
	send(t, alice, room, "forget me")
	_, a := ssync(t, h.url, token, "", 0, map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 1}}})
	if a.Pos == "" {
		t.Fatalf("first request: %+v", a)
	}
	if n := h.svc.pollerCount(); n != 1 {
		t.Fatalf("%d pollers, want 1", n)
	}
	done := make(chan *answer, 1)
	var status int
	go func() {
		var a2 *answer
		status, a2 = ssync(t, h.url, token, a.Pos, 55*time.Second, map[string]any{})
		done <- a2
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := alice.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case a2 := <-done:
		if status != 401 || a2.Errcode != "M_UNKNOWN_TOKEN" {
			t.Fatalf("the waiting request after logout: %d %s", status, a2.Errcode)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the waiting request outlived the logout")
	}
	waitFor(t, func() bool { return h.svc.pollerCount() == 0 })
	// What the edge stored for the logged-out device is gone.
	waitFor(t, func() bool {
		total := 0
		for _, table := range append(deviceTables, "slidingsync_devices") {
			var n int
			if err := h.svc.st.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			total += n
		}
		return total == 0
	})
	if status, a3 := ssync(t, h.url, token, "", 0, map[string]any{}); status != 401 || a3.Errcode != "M_UNKNOWN_TOKEN" {
		t.Fatalf("the revoked token afterwards: %d %s", status, a3.Errcode)
	}
}

// TestTokenNeverOnDisk: the store holds what was synced, never the token
// that synced it.
func TestTokenNeverOnDisk(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	alice := h.user(t, "alice")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Diary", Preset: "private_chat"})
	send(t, alice, room, "dear diary")
	path := filepath.Join(t.TempDir(), "disk.db")
	svc := openService(t, h.den.URL, path, "")
	base := serveService(t, svc)
	_, a := ssync(t, base, alice.AccessToken, "", 0, map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 5}}})
	if len(a.Rooms) != 1 {
		t.Fatalf("rooms: %+v", a.Rooms)
	}
	svc.Close()
	files, _ := filepath.Glob(path + "*")
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found = found || bytes.Contains(b, []byte("dear diary"))
		if bytes.Contains(b, []byte(alice.AccessToken)) {
			t.Fatalf("%s holds the access token", f)
		}
		if fi, _ := os.Stat(f); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is mode %v: others can read it", f, fi.Mode().Perm())
		}
	}
	if !found {
		t.Fatal("the store does not hold the synced message: the search proves nothing")
	}
}

// TestIdlePollerStops: a device that stops asking stops being polled, and
// its next request starts a poller again and continues where it was.
func TestIdlePollerStops(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	u, _ := url.Parse(h.den.URL)
	svc, err := Open(Config{Upstream: u, SQLitePath: filepath.Join(t.TempDir(), "idle.db"), IdleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	base := serveService(t, svc)
	alice := h.user(t, "alice")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Quiet", Preset: "private_chat"})
	req := map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 3}}}
	_, a := ssync(t, base, alice.AccessToken, "", 0, req)
	if svc.pollerCount() != 1 {
		t.Fatalf("%d pollers after a request", svc.pollerCount())
	}
	// The poller notices at the end of its current long-poll.
	waitFor(t, func() bool { return svc.pollerCount() == 0 })
	send(t, alice, room, "while nobody polled")
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, a2 := ssync(t, base, alice.AccessToken, a.Pos, 10*time.Second, req)
		if a2.Errcode != "" {
			t.Fatalf("continuing after the idle stop: %s", a2.Errcode)
		}
		if slices.Contains(bodies(a2.Rooms[room.String()].Timeline), "while nobody polled") {
			break
		}
		a = a2
		if time.Now().After(deadline) {
			t.Fatal("the message sent while idle never arrived")
		}
	}
}

// TestEmbeddedStoreOpensOnFirstUse: an edge whose users never ask for
// sliding sync does not open SQLite (about 3 MB that no close gives
// back); its file is there from the start, so a bad path still fails
// at start.
func TestEmbeddedStoreOpensOnFirstUse(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	path := filepath.Join(t.TempDir(), "lazy.db")
	svc := openService(t, h.den.URL, path, "")
	base := serveService(t, svc)
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("before any request: %v %v", fi, err)
	}
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Fatalf("SQLite was opened before any request: %v", err)
	}
	alice := h.user(t, "alice")
	if status, a := ssync(t, base, alice.AccessToken, "", 0, map[string]any{}); status != 200 {
		t.Fatalf("first request: %d %s", status, a.Error)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("after a request the store is still empty: %v %v", fi, err)
	}
	if _, err := Open(Config{Upstream: svc.upstream, SQLitePath: filepath.Join(path, "under-a-file.db")}); err == nil {
		t.Fatal("a store path under a file opened")
	}
}

// TestPollersPerUserBounded: one account logged in many times holds at
// most maxPollersPerUser pollers (connections to the homeserver); the
// device used least recently makes room, and comes back when it asks.
func TestPollersPerUserBounded(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	first := h.user(t, "mallory")
	_, a := ssync(t, h.url, first.AccessToken, "", 0, map[string]any{})
	if a.Pos == "" {
		t.Fatalf("first device: %+v", a)
	}
	for range maxPollersPerUser {
		c := h.login(t, "mallory")
		if status, a := ssync(t, h.url, c.AccessToken, "", 0, map[string]any{}); status != 200 {
			t.Fatalf("another device: %d %s", status, a.Error)
		}
	}
	waitFor(t, func() bool { return h.svc.pollerCount() == maxPollersPerUser })
	// The first device, stopped to make room, continues where it was.
	if status, a2 := ssync(t, h.url, first.AccessToken, a.Pos, 0, map[string]any{}); status != 200 || a2.Pos == "" {
		t.Fatalf("the first device after its poller made room: %d %s", status, a2.Errcode)
	}
	waitFor(t, func() bool { return h.svc.pollerCount() == maxPollersPerUser })
	// Another user is not counted against mallory.
	bob := h.user(t, "bob")
	ssync(t, h.url, bob.AccessToken, "", 0, map[string]any{})
	waitFor(t, func() bool { return h.svc.pollerCount() == maxPollersPerUser+1 })
}
