package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/wellknownd/wellknownd/internal/dendriteadmin"
	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
)

// edgeConfig fronts upstream for example.com, delegated to
// matrix.example.com, in plain HTTP, changed by opts.
func edgeConfig(upstream string, opts ...edgeconf.Option) string {
	return edgeconf.New(append([]edgeconf.Option{edgeconf.Upstream(upstream, "max_body: 100MiB")}, opts...)...)
}

// loggedInClient registers user on Dendrite directly (shared secret: no
// open registration) and logs in through the edge.
func loggedInClient(t *testing.T, d *daemon, den *dendritetest.Dendrite, user string) *mautrix.Client {
	t.Helper()
	ctx := context.Background()
	if _, err := dendriteadmin.Register(ctx, den.URL, "example.com", den.Secret, user, "correct horse "+user, false); err != nil {
		t.Fatal(err)
	}
	cli, err := mautrix.NewClient("https://matrix.example.com", "", "")
	if err != nil {
		t.Fatal(err)
	}
	cli.Client = &http.Client{Transport: plainTransport(d.addrs["http"])}
	if _, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user},
		Password:         "correct horse " + user,
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("login through the edge: %v", err)
	}
	if cli.UserID != id.NewUserID(user, "example.com") {
		t.Fatalf("logged in as %s", cli.UserID)
	}
	return cli
}

// TestDendriteThroughTheEdge runs the real Dendrite behind wellknownd and
// uses it as a Matrix client would.
func TestDendriteThroughTheEdge(t *testing.T) {
	den := dendritetest.Start(t, dendritetest.Options{ServerName: "example.com", MaxFileSize: 100 << 20})
	d := startDaemon(t, edgeConfig(den.URL), "http")
	ctx := context.Background()
	alice := loggedInClient(t, d, den, "alice")

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "edge test", Preset: "private_chat"})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}

	t.Run("messages", func(t *testing.T) {
		t.Parallel()
		var sent []id.EventID
		for i := range 3 {
			resp, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("hello %d", i))
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			sent = append(sent, resp.EventID)
		}
		// Dendrite's sync API learns of events asynchronously from its
		// roomserver: read until all three are there.
		var texts []string
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			msgs, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 10)
			if err != nil {
				t.Fatalf("messages: %v", err)
			}
			texts = texts[:0]
			for _, ev := range msgs.Chunk {
				if ev.Type == event.EventMessage {
					ev.Content.ParseRaw(ev.Type)
					texts = append(texts, ev.Content.AsMessage().Body)
				}
			}
			if len(texts) == 3 || time.Now().After(deadline) {
				break
			}
		}
		if strings.Join(texts, ",") != "hello 2,hello 1,hello 0" {
			t.Fatalf("read back %q", texts)
		}
		// An event ID starts with '$' and travels as %24 in the path.
		ev, err := alice.GetEvent(ctx, room.RoomID, sent[1])
		if err != nil || ev.ID != sent[1] {
			t.Fatalf("get event %s: %v %v", sent[1], ev, err)
		}
	})

	t.Run("percent-encoded state key", func(t *testing.T) {
		t.Parallel()
		// A state key with '/', '?' and '%' must reach Dendrite as %2F, %3F
		// and %25: decoded, it would be another path entirely.
		key := "a/b?c%d:e"
		typ := event.NewEventType("org.example.edge")
		if _, err := alice.SendStateEvent(ctx, room.RoomID, typ, key, map[string]any{"v": 42}); err != nil {
			t.Fatalf("put state %q: %v", key, err)
		}
		var got map[string]any
		if err := alice.StateEvent(ctx, room.RoomID, typ, key, &got); err != nil || got["v"] != float64(42) {
			t.Fatalf("get state %q: %v %v", key, got, err)
		}
	})

	t.Run("long-poll sync past 90s", func(t *testing.T) {
		t.Parallel()
		// Bob is in no room: nothing wakes his sync, so Dendrite holds it
		// for the whole timeout while alice's subtests run.
		bob := loggedInClient(t, d, den, "bob")
		// Sync until nothing is pending (a new login first sees its own
		// device list and account data): a 2 s poll that is held 2 s.
		since := ""
		for i := 0; ; i++ {
			start := time.Now()
			resp, err := bob.SyncRequest(ctx, 2000, since, "", false, event.PresenceOffline)
			if err != nil {
				t.Fatalf("sync: %v", err)
			}
			since = resp.NextBatch
			if time.Since(start) > 1500*time.Millisecond {
				break
			}
			if i == 10 {
				t.Fatal("bob's sync never went idle")
			}
		}
		start := time.Now()
		resp, err := bob.SyncRequest(ctx, 95_000, since, "", false, event.PresenceOffline)
		held := time.Since(start)
		if err != nil {
			t.Fatalf("long-poll sync after %s: %v", held.Round(time.Second), err)
		}
		if held < 90*time.Second {
			t.Fatalf("sync returned after %s with %d rooms; the test needs it held past 90s", held.Round(time.Second), len(resp.Rooms.Join))
		}
		t.Logf("sync held %s and answered 200", held.Round(time.Second))
	})

	t.Run("50 MB media round trip", func(t *testing.T) {
		t.Parallel()
		data := make([]byte, 50<<20)
		rand.Read(data)
		want := sha256.Sum256(data)
		up, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{Content: bytes.NewReader(data), ContentLength: int64(len(data)), ContentType: "application/octet-stream", FileName: "blob.bin"})
		if err != nil {
			t.Fatalf("upload 50 MB: %v", err)
		}
		resp, err := alice.Download(ctx, up.ContentURI)
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("downloaded %d bytes (err %v), identical %v", n, err, bytes.Equal(h.Sum(nil), want[:]))
		}
	})
}
