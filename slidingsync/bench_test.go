package slidingsync

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/wellknownd/wellknownd/internal/testing/synapsetest"
)

// benchRooms is the user's room count in the benchmarks (BENCH_ROOMS).
func benchRooms() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROOMS")); err == nil && n > 0 {
		return n
	}
	return 500
}

// makeRooms creates n rooms for cli, each with a message, a few at a time.
func makeRooms(b testing.TB, cli *mautrix.Client, n int) []id.RoomID {
	rooms := make([]id.RoomID, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := cli.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Name: fmt.Sprintf("Room %03d", i), Preset: "private_chat"})
			if err != nil {
				b.Errorf("creating room %d: %v", i, err)
				return
			}
			rooms[i] = resp.RoomID
			if _, err := cli.SendText(context.Background(), resp.RoomID, fmt.Sprintf("hello %d", i)); err != nil {
				b.Errorf("sending to room %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return rooms
}

// v2InitialSync times a client's own initial /sync against Dendrite.
func v2InitialSync(b testing.TB, base, token, filter string) time.Duration {
	q := url.Values{"timeout": {"0"}}
	if filter != "" {
		q.Set("filter", filter)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/_matrix/client/v3/sync?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var sink [32 << 10]byte
	for {
		if _, err := resp.Body.Read(sink[:]); err != nil {
			break
		}
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("v2 sync: %d", resp.StatusCode)
	}
	return time.Since(start)
}

// firstListRequest is Element X's first room-list request: the first 20
// rooms by activity, one event each, the state its list shows.
var firstListRequest = map[string]any{"lists": map[string]any{"all": map[string]any{
	"ranges": [][2]int{{0, 19}}, "timeline_limit": 1,
	"required_state": [][2]string{{"m.room.name", ""}, {"m.room.avatar", ""}, {"m.room.encryption", ""}, {"m.room.member", "$ME"}, {"m.room.create", ""}, {"m.room.join_rules", ""}},
}}}

// side is one homeserver under measure: where clients send the client
// API and where they send sliding sync.
type side struct {
	name, client, ss string
	login            func(b testing.TB) *mautrix.Client
}

// BenchmarkFirstList puts the edge in front of Dendrite beside Synapse's
// native MSC4186, for a user in BENCH_ROOMS rooms: each server's own v2
// initial sync, the first sliding-sync list (range 0-19, timeline_limit
// 1) of a new device and of a known device's new connection, the delay
// from a message being sent to a waiting request's answer, and (for the
// edge) memory per active device.
//
//	go test ./slidingsync -run '^$' -bench FirstList -benchtime 1x -v -timeout 60m
func BenchmarkFirstList(b *testing.B) {
	n := benchRooms()
	h := startHomeserver(b)
	h.user(b, "alice")
	syn := synapsetest.Start(b, synapsetest.Options{})
	syn.Register(b, "alice", "password-alice", false)
	sides := []side{
		{"edge+dendrite", h.den.URL, h.url, func(b testing.TB) *mautrix.Client { return h.login(b, "alice") }},
		{"synapse", syn.BaseURL, syn.BaseURL, func(b testing.TB) *mautrix.Client { return passwordLogin(b, syn.BaseURL, "alice") }},
	}
	rooms := map[string][]id.RoomID{}
	for _, sd := range sides {
		start := time.Now()
		rooms[sd.name] = makeRooms(b, sd.login(b), n)
		b.Logf("%s: %d rooms made in %v", sd.name, n, time.Since(start).Round(time.Millisecond))
	}
	for b.Loop() {
		for _, sd := range sides {
			owner := sd.login(b)
			v2 := v2InitialSync(b, sd.client, owner.AccessToken, "")
			v2l := v2InitialSync(b, sd.client, owner.AccessToken, `{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}}}`)
			dev := sd.login(b)
			t0 := time.Now()
			status, a := ssync(b, sd.ss, dev.AccessToken, "", 0, firstListRequest)
			cold := time.Since(t0)
			if status != 200 || len(a.Lists["all"].Ops) == 0 || len(a.Lists["all"].Ops[0].RoomIDs) != 20 || a.Lists["all"].Count != n {
				b.Fatalf("%s: first list: %d %s %+v", sd.name, status, a.Error, a.Lists)
			}
			var warm []time.Duration
			for i := range 5 {
				t0 = time.Now()
				ssync(b, sd.ss, dev.AccessToken, "", 0, map[string]any{"conn_id": fmt.Sprint("again", i), "lists": firstListRequest["lists"]})
				warm = append(warm, time.Since(t0))
			}
			slices.Sort(warm)
			b.Logf("%s: v2 initial sync %v (timeline 1, lazy members: %v); first list: new device %v, known device median %v",
				sd.name, v2.Round(time.Millisecond), v2l.Round(time.Millisecond), cold.Round(time.Millisecond), warm[2].Round(100*time.Microsecond))
			b.ReportMetric(float64(v2.Milliseconds()), sd.name+"-v2-ms")
			b.ReportMetric(float64(cold.Milliseconds()), sd.name+"-new-device-ms")
			b.ReportMetric(float64(warm[2].Microseconds())/1000, sd.name+"-known-device-ms")

			// Wake-up: a message in one of the rooms while a request waits.
			_, a = ssync(b, sd.ss, dev.AccessToken, "", 0, firstListRequest)
			var lat []time.Duration
			for i := range 10 {
				done := make(chan time.Time, 1)
				go func(pos string) {
					ssync(b, sd.ss, dev.AccessToken, pos, 30*time.Second, firstListRequest)
					done <- time.Now()
				}(a.Pos)
				time.Sleep(300 * time.Millisecond)
				sent := time.Now()
				if _, err := owner.SendText(context.Background(), rooms[sd.name][i], "wake"); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-done).Sub(sent))
				_, a = ssync(b, sd.ss, dev.AccessToken, a.Pos, 0, firstListRequest)
			}
			slices.Sort(lat)
			b.Logf("%s: message sent → waiting request answered: median %v, max %v", sd.name, lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, sd.name+"-wake-ms")
		}
		b.Logf("edge: poll stored → waiting request answered (wellknownd_slidingsync_wakeup_seconds): %s", h.svc.wakeupSummary())

		// Memory per active device: more of alice's devices, each with a
		// poller of her rooms and a request waiting on it.
		const devices = 10
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rssBefore := rss(b)
		var wg sync.WaitGroup
		for range devices {
			c := h.login(b, "alice")
			_, a := ssync(b, h.url, c.AccessToken, "", 0, firstListRequest)
			wg.Add(1)
			go func() { defer wg.Done(); ssync(b, h.url, c.AccessToken, a.Pos, 10*time.Second, firstListRequest) }()
		}
		time.Sleep(time.Second)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.Logf("edge, per active device (poller + waiting request, %d rooms): Go heap %.1f KiB, RSS %.1f KiB (the test's clients included)",
			n, float64(int64(after.HeapInuse)-int64(before.HeapInuse))/devices/1024, float64(rss(b)-rssBefore)/devices/1024)
		wg.Wait()
	}
}

// passwordLogin logs a new device of user in at base.
func passwordLogin(b testing.TB, base, user string) *mautrix.Client {
	cli, err := mautrix.NewClient(base, "", "")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cli.Login(context.Background(), &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user},
		Password: "password-" + user, StoreCredentials: true,
	}); err != nil {
		b.Fatalf("logging in %s at %s: %v", user, base, err)
	}
	return cli
}

// rss is the process's resident memory in bytes.
func rss(b testing.TB) int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Fatal(err)
	}
	var size, res int64
	fmt.Sscan(string(raw), &size, &res)
	return res * int64(os.Getpagesize())
}
