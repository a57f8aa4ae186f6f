package slidingsync

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
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

// BenchmarkFirstListDendrite: a user in BENCH_ROOMS rooms on Dendrite.
// It reports Dendrite's own v2 initial sync, the first sliding-sync list
// of a new device (the edge's first v2 sync included), of a known device's
// new connection, the wake-up of a waiting request, and memory per device.
//
//	go test ./slidingsync -run '^$' -bench FirstListDendrite -benchtime 1x -v
func BenchmarkFirstListDendrite(b *testing.B) {
	h := startHomeserver(b)
	alice := h.user(b, "alice")
	n := benchRooms()
	start := time.Now()
	rooms := makeRooms(b, alice, n)
	b.Logf("%d rooms made in %v", n, time.Since(start).Round(time.Millisecond))
	for b.Loop() {
		d := v2InitialSync(b, h.den.URL, alice.AccessToken, "")
		dl := v2InitialSync(b, h.den.URL, alice.AccessToken, `{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}}}`)
		dev := h.login(b, "alice")
		t0 := time.Now()
		status, a := ssync(b, h.url, dev.AccessToken, "", 0, firstListRequest)
		cold := time.Since(t0)
		if status != 200 || len(a.Lists["all"].Ops) == 0 || len(a.Lists["all"].Ops[0].RoomIDs) != 20 || a.Lists["all"].Count != n {
			b.Fatalf("first list: %d %+v", status, a.Lists)
		}
		t0 = time.Now()
		ssync(b, h.url, dev.AccessToken, "", 0, map[string]any{"conn_id": "again", "lists": firstListRequest["lists"]})
		warm := time.Since(t0)
		b.Logf("v2 initial sync (no filter) %v; v2 (timeline 1, lazy members) %v; sliding sync first list: new device %v, known device %v",
			d.Round(time.Millisecond), dl.Round(time.Millisecond), cold.Round(time.Millisecond), warm.Round(time.Millisecond))
		b.ReportMetric(float64(d.Milliseconds()), "v2-ms")
		b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
		b.ReportMetric(float64(warm.Microseconds())/1000, "warm-ms")

		// Wake-up: a message in one of alice's rooms while her request waits.
		_, a = ssync(b, h.url, dev.AccessToken, "", 0, firstListRequest)
		var lat []time.Duration
		for i := range 10 {
			done := make(chan time.Time, 1)
			go func(pos string) {
				ssync(b, h.url, dev.AccessToken, pos, 30*time.Second, firstListRequest)
				done <- time.Now()
			}(a.Pos)
			time.Sleep(200 * time.Millisecond)
			sent := time.Now()
			if _, err := alice.SendText(context.Background(), rooms[i], "wake"); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, (<-done).Sub(sent))
			_, a = ssync(b, h.url, dev.AccessToken, a.Pos, 0, firstListRequest)
		}
		b.Logf("send → waiting request answered: %v", lat)
		b.Logf("poll stored → waiting request answered (wellknownd_slidingsync_wakeup_seconds): %s", h.svc.wakeupSummary())

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
		b.Logf("per active device (poller + waiting request, %d rooms): Go heap %.1f KiB, RSS %.1f KiB (the test's clients included)",
			n, float64(int64(after.HeapInuse)-int64(before.HeapInuse))/devices/1024, float64(rss(b)-rssBefore)/devices/1024)
		wg.Wait()
	}
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
