package slidingsync

import (
	"context"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/wellknownd/wellknownd/internal/testing/pgtest"
)

// TestTwoEdgesShareOnePostgreSQL: two edges on one database poll a
// device once between them; either answers its client from what the
// other stored, with the other's positions; and when the polling edge
// stops, the other takes over.
func TestTwoEdgesShareOnePostgreSQL(t *testing.T) {
	t.Parallel()
	h := startHomeserver(t)
	pg := pgtest.Start(t)
	u, _ := url.Parse(pg.URL)
	u.User = url.UserPassword(u.User.Username(), pg.Password)
	svcA := openService(t, h.den.URL, "", u.String())
	svcB := openService(t, h.den.URL, "", u.String())
	baseA, baseB := serveService(t, svcA), serveService(t, svcB)

	alice := h.user(t, "alice")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Relay", Preset: "private_chat"})
	send(t, alice, room, "one")
	req := map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 3}}}
	status, a := ssync(t, baseA, alice.AccessToken, "", 0, req)
	if status != 200 || !slices.Contains(bodies(a.Rooms[room.String()].Timeline), "one") {
		t.Fatalf("through A: %d %+v", status, a)
	}
	// B continues A's connection, and does not poll: A holds the lease.
	_, b := ssync(t, baseB, alice.AccessToken, a.Pos, 0, req)
	if b.Pos == "" || b.Errcode != "" {
		t.Fatalf("B with A's position: %+v", b)
	}
	waitFor(t, func() bool { return svcA.pollerCount() == 1 })
	if n := svcB.pollerCount(); n != 0 {
		t.Fatalf("B polls %d devices while A holds the lease", n)
	}
	// A message reaches a request waiting on B, through what A stored.
	wait := func(base, pos, want string) *answer {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			_, a := ssync(t, base, alice.AccessToken, pos, 20*time.Second, req)
			if a.Errcode != "" {
				t.Fatalf("%s %s", a.Errcode, a.Error)
			}
			pos = a.Pos
			if slices.Contains(bodies(a.Rooms[room.String()].Timeline), want) {
				return a
			}
		}
		t.Fatalf("%q never reached the client", want)
		return nil
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		alice.SendText(context.Background(), room, "two")
	}()
	b = wait(baseB, b.Pos, "two")

	// A stops: B takes the device over and polls it itself.
	svcA.Close()
	go func() {
		time.Sleep(300 * time.Millisecond)
		alice.SendText(context.Background(), room, "three")
	}()
	wait(baseB, b.Pos, "three")
	if n := svcB.pollerCount(); n != 1 {
		t.Fatalf("B polls %d devices after A stopped, want 1", n)
	}
}

// TestEdgesStartTogetherOnOnePostgreSQL: edges that open one new database
// at the same moment all open it (creating the tables is one edge's at a
// time).
func TestEdgesStartTogetherOnOnePostgreSQL(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	u, _ := url.Parse(pg.URL)
	u.User = url.UserPassword(u.User.Username(), pg.Password)
	up, _ := url.Parse("http://127.0.0.1:1")
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			svc, err := Open(Config{Upstream: up, PostgresURL: u.String()})
			if err == nil {
				svc.Close()
			}
			errs <- err
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatalf("an edge failed to open the shared store: %v", err)
		}
	}
}
