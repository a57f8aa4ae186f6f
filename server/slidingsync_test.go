package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/pgtest"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
	"github.com/wellknownd/wellknownd/slidingsync"
)

// dendriteVersions is a /versions answer without MSC4186, long enough
// (over compression.min_length) to be compressed, with members the edge
// must keep as they are: numbers, nested objects, other features.
var dendriteVersions = `{"versions":["r0.0.1","r0.1.0","v1.1","v1.2","v1.3","v1.4","v1.5","v1.6"],` +
	`"unstable_features":{"org.matrix.msc3916.stable":true,"org.matrix.e2e_cross_signing":false},` +
	`"padding":"` + strings.Repeat("x", 1200) + `","n":1.50,"nested":{"a":[1,2,{"b":null}]}}`

// synapseVersions advertises MSC4186: the homeserver serves it itself.
const synapseVersions = `{"versions":["v1.11"],"unstable_features":{"org.matrix.simplified_msc3575":true}}`

// ssUpstream is a homeserver that answers /versions with what versions
// holds (ETag "v1", and 304 to If-None-Match "v1"), every other path with
// {"proxied":true}, and records what reached it.
type ssUpstream struct {
	*httptest.Server
	versions atomic.Pointer[string]
	// versionsDelay holds each /versions answer this long.
	versionsDelay time.Duration
	mu            sync.Mutex
	reqs          []*http.Request
}

func newSSUpstream(t *testing.T, versions string, delay time.Duration) *ssUpstream {
	u := &ssUpstream{versionsDelay: delay}
	u.versions.Store(&versions)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, r)
		u.mu.Unlock()
		if r.URL.Path == "/_matrix/client/versions" {
			time.Sleep(u.versionsDelay)
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, *u.versions.Load())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"proxied":true}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// seen counts the requests for path that reached the upstream.
func (u *ssUpstream) seen(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, r := range u.reqs {
		if r.URL.Path == path {
			n++
		}
	}
	return n
}

// lastVersions is the last /versions request that reached the upstream.
func (u *ssUpstream) lastVersions() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := len(u.reqs) - 1; i >= 0; i-- {
		if u.reqs[i].URL.Path == "/_matrix/client/versions" {
			return u.reqs[i]
		}
	}
	return nil
}

// ssEdge runs an edge (Run, plain HTTP) in front of up, its sliding-sync
// store under a directory of t's; more are further fields of the
// sliding_sync section (", enabled: false").
func ssEdge(t *testing.T, up string, more string, opts ...Option) (*testEdge, string) {
	t.Helper()
	httpAddr := freeport.Addr(t)
	cfg := edgeconf.New(edgeconf.Listen(httpAddr, "", "", ""), edgeconf.Upstream(up, "max_body: 1KiB")) +
		fmt.Sprintf("sliding_sync: {store: %q%s}\n", filepath.Join(t.TempDir(), "ss.db"), more)
	e := startEdge(t, cfg, onListeners, withOptions(opts...))
	wait.TCP(t, httpAddr)
	return e, "http://" + httpAddr
}

// ssDo sends one request to the edge at base for host matrix.example.com
// and returns the answer with its body read.
func ssDo(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "matrix.example.com"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = &http.Client{Transport: &http.Transport{DisableCompression: true}}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp, b
}

// assertAmended checks that got is want with MSC4186 added to its
// unstable_features, every other member equal as JSON.
func assertAmended(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("/versions is not JSON: %v: %q", err, got)
	}
	json.Unmarshal([]byte(want), &w)
	w["unstable_features"].(map[string]any)[slidingsync.UnstableFeature] = true
	if !reflect.DeepEqual(g, w) {
		var differ []string
		for k := range w {
			if !reflect.DeepEqual(g[k], w[k]) {
				differ = append(differ, k)
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				differ = append(differ, k)
			}
		}
		t.Fatalf("/versions is not the homeserver's with %s added: %v differ (unstable_features %v)", slidingsync.UnstableFeature, differ, g["unstable_features"])
	}
}

// assertMissingToken checks the edge's own 401 M_MISSING_TOKEN, with the
// client API's CORS headers.
func assertMissingToken(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	var e struct{ Errcode string }
	json.Unmarshal(body, &e)
	if resp.StatusCode != http.StatusUnauthorized || e.Errcode != "M_MISSING_TOKEN" {
		t.Fatalf("sliding sync without a token: %d %s; want 401 M_MISSING_TOKEN", resp.StatusCode, body)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("sliding sync answer without the client API's CORS headers: %v", resp.Header)
	}
}

// TestSlidingSyncAtTheEdge: in front of a homeserver without MSC4186,
// /versions gains the feature (the rest equal as JSON, with the right
// length, a tag of its own that revalidates through the homeserver, and
// compressed when asked), and the sliding-sync path is answered by the
// edge and never reaches the homeserver: a tokenless request gets 401
// M_MISSING_TOKEN, a preflight the client API's CORS, an oversized body
// 413; the mode is in the metrics, the requests in the request metrics.
func TestSlidingSyncAtTheEdge(t *testing.T) {
	t.Parallel()
	up := newSSUpstream(t, dendriteVersions, 0)
	edge, base := ssEdge(t, up.URL, "")

	resp, body := ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil)
	assertAmended(t, body, dendriteVersions)
	if resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
		t.Errorf("/versions: Content-Length %q (%d) for a body of %d bytes", resp.Header.Get("Content-Length"), resp.ContentLength, len(body))
	}
	if et := resp.Header.Get("ETag"); et != `"v1-msc4186"` {
		t.Errorf("/versions ETag %q; want the homeserver's made another, \"v1-msc4186\"", et)
	}

	// Revalidation: the homeserver sees its own tag; the client gets its.
	resp, body = ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil, "If-None-Match", `"v1-msc4186"`)
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != `"v1-msc4186"` || len(body) != 0 {
		t.Errorf("revalidating the amended /versions: %d, ETag %q, %d bytes; want 304 with \"v1-msc4186\"", resp.StatusCode, resp.Header.Get("ETag"), len(body))
	}
	if inm := up.lastVersions().Header.Get("If-None-Match"); inm != `"v1"` {
		t.Errorf("the homeserver was asked If-None-Match %q; want its own tag \"v1\"", inm)
	}
	// The homeserver's own tag names the answer without the feature: the
	// client must get the amended one, not a 304.
	resp, body = ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil, "If-None-Match", `"v1"`)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("revalidating the homeserver's own tag: %d; want 200 and the amended answer", resp.StatusCode)
	} else {
		assertAmended(t, body, dendriteVersions)
	}

	// Compressed as any answer is.
	resp, body = ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil, "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("/versions with Accept-Encoding gzip: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	assertAmended(t, plain, dendriteVersions)
	if ae := up.lastVersions().Header.Get("Accept-Encoding"); ae != "" {
		t.Errorf("the homeserver was asked for Accept-Encoding %q; the edge amends plain JSON", ae)
	}

	// The homeserver upgraded: its new answer is amended, not the old.
	upgraded := strings.Replace(dendriteVersions, `"v1.6"]`, `"v1.6","v1.7"]`, 1)
	up.versions.Store(&upgraded)
	_, body = ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil)
	assertAmended(t, body, upgraded)

	resp, body = ssDo(t, nil, "POST", base+slidingsync.Path+"?timeout=30000", strings.NewReader(`{"lists":{}}`))
	assertMissingToken(t, resp, body)
	resp, _ = ssDo(t, nil, "OPTIONS", base+slidingsync.Path, nil, "Origin", "https://app.element.io", "Access-Control-Request-Method", "POST")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight of the sliding-sync path: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(strings.Repeat("x", 2048)), "Authorization", "Bearer t")
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "M_TOO_LARGE") {
		t.Errorf("a 2 KiB body over max_body 1KiB: %d %s", resp.StatusCode, body)
	}
	if n := up.seen(slidingsync.Path); n != 0 {
		t.Errorf("the sliding-sync path reached the homeserver %d times", n)
	}

	metrics := edge.adminGET(t, "/metrics")
	for _, want := range []string{
		`wellknownd_sliding_sync_mode{mode="edge"} 1`,
		`wellknownd_sliding_sync_mode{mode="homeserver"} 0`,
		`wellknownd_http_requests_total{code="401",host="matrix.example.com",route="client"} 1`,
		// The Service's own, beside the edge's.
		`wellknownd_slidingsync_requests_total{outcome="M_MISSING_TOKEN"} 1`,
		`wellknownd_slidingsync_pollers 0`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "sliding"))
		}
	}
}

// TestSlidingSyncTakesNoUpstreamSlot: with the only upstream connection
// (limits.upstream_conns 1) held by a long request, a sliding-sync
// request is still answered by the edge at once, where a proxied one
// waits for the slot.
func TestSlidingSyncTakesNoUpstreamSlot(t *testing.T) {
	t.Parallel()
	up := newCountingUpstream(t)
	httpAddr := freeport.Addr(t)
	startEdge(t, edgeconf.New(edgeconf.Listen(httpAddr, "", "", ""), edgeconf.Upstream(up.URL))+
		fmt.Sprintf("limits: {upstream_conns: 1, upstream_wait: 30s}\nsliding_sync: {store: %q}\n", filepath.Join(t.TempDir(), "ss.db")), onListeners)
	wait.TCP(t, httpAddr)
	base := "http://" + httpAddr
	// /versions first, so that the edge need not ask for it while the
	// slot is held (it answers the counting upstream at once anyway).
	ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil)
	held := make(chan struct{})
	go func() {
		defer close(held)
		req, _ := http.NewRequest("GET", base+"/_matrix/client/v3/sync?timeout=30000", nil)
		req.Host = "matrix.example.com"
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	wait.True(t, "the long-poll to hold the one upstream slot", 10*time.Second, func() bool { return up.held.Load() == 1 })
	resp, body := ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
	assertMissingToken(t, resp, body)
	close(up.release)
	<-held
}

// TestSlidingSyncDisabled: with enabled false, /versions comes byte for
// byte as the homeserver sent it and the path is the homeserver's.
func TestSlidingSyncDisabled(t *testing.T) {
	t.Parallel()
	up := newSSUpstream(t, dendriteVersions, 0)
	edge, base := ssEdge(t, up.URL, ", enabled: false")
	resp, body := ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil)
	if string(body) != dendriteVersions || resp.Header.Get("ETag") != `"v1"` {
		t.Errorf("/versions with sliding sync off: ETag %q, not byte for byte the homeserver's", resp.Header.Get("ETag"))
	}
	resp, body = ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
	if resp.StatusCode != 200 || string(body) != `{"proxied":true}` || up.seen(slidingsync.Path) != 1 {
		t.Errorf("sliding-sync path with sliding sync off: %d %s, reached the homeserver %d times", resp.StatusCode, body, up.seen(slidingsync.Path))
	}
	if m := edge.adminGET(t, "/metrics"); !strings.Contains(m, `wellknownd_sliding_sync_mode{mode="off"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(m, "sliding_sync"))
	}
}

// TestSlidingSyncNativeHomeserver: a homeserver whose /versions
// advertises MSC4186 (Synapse) keeps it: /versions passes unchanged and
// the path is proxied to it; when the probe sees the advertisement go,
// the edge takes the path over, and gives it back when it returns.
func TestSlidingSyncNativeHomeserver(t *testing.T) {
	t.Parallel()
	up := newSSUpstream(t, synapseVersions, 0)
	edge, base := ssEdge(t, up.URL, "", WithProbeInterval(50*time.Millisecond))
	_, body := ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil)
	if string(body) != synapseVersions {
		t.Errorf("/versions of a homeserver that serves it: %s", body)
	}
	resp, body := ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
	if resp.StatusCode != 200 || string(body) != `{"proxied":true}` || up.seen(slidingsync.Path) != 1 {
		t.Fatalf("sliding sync of a homeserver that serves it: %d %s, reached it %d times", resp.StatusCode, body, up.seen(slidingsync.Path))
	}
	if m := edge.adminGET(t, "/metrics"); !strings.Contains(m, `wellknownd_sliding_sync_mode{mode="homeserver"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(m, "sliding_sync"))
	}

	v := dendriteVersions
	up.versions.Store(&v)
	wait.Until(t, "the edge to answer sliding sync once the homeserver stops advertising it", 10*time.Second, func() error {
		resp, body := ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	})
	_, body = ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil)
	assertAmended(t, body, dendriteVersions)
	v2 := synapseVersions
	up.versions.Store(&v2)
	wait.Until(t, "the homeserver to get it back", 10*time.Second, func() error {
		resp, body := ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
		if resp.StatusCode != 200 {
			return fmt.Errorf("%d %s", resp.StatusCode, body)
		}
		return nil
	})
	if _, body = ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil); string(body) != synapseVersions {
		t.Errorf("/versions once the homeserver advertises it again: %.200s", body)
	}
}

// TestSlidingSyncAsksVersionsOnce: before any /versions answer has been
// seen (no probe runs under supervision), the first sliding-sync
// requests ask the homeserver's /versions once, together, and are then
// routed by it: to a Synapse, or to the edge for a Dendrite.
func TestSlidingSyncAsksVersionsOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, versions string
		status         int
	}{{"synapse", synapseVersions, 200}, {"dendrite", dendriteVersions, 401}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			up := newSSUpstream(t, c.versions, 300*time.Millisecond)
			cfg, problems := config.Parse("edge.yaml", []byte(edgeconf.Plain(up.URL, "1KiB")+
				fmt.Sprintf("sliding_sync: {store: %q}\n", filepath.Join(t.TempDir(), "ss.db"))))
			if errs := problems.Errors(); len(errs) > 0 {
				t.Fatal(errs)
			}
			// The main handler without Run, so without the probe; the
			// Service opened as Run opens it.
			srv := New(cfg, slog.New(slog.DiscardHandler))
			if err := srv.ss.start(cfg); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.ss.stop)
			ts := httptest.NewServer(srv)
			t.Cleanup(ts.Close)
			var wg sync.WaitGroup
			codes := make([]int, 5)
			for i := range codes {
				wg.Go(func() {
					resp, _ := ssDo(t, nil, "POST", ts.URL+slidingsync.Path, strings.NewReader(`{}`))
					codes[i] = resp.StatusCode
				})
			}
			wg.Wait()
			for i, code := range codes {
				if code != c.status {
					t.Errorf("request %d: %d, want %d", i, code, c.status)
				}
			}
			if n := up.seen("/_matrix/client/versions"); n != 1 {
				t.Errorf("/versions asked %d times, want once for all five", n)
			}
		})
	}
}

// TestSlidingSyncReload: a reload turns sliding sync off (the path and
// /versions go back to the homeserver) and on again; one whose store
// cannot be opened fails, and the Service in place goes on answering; a
// new upstream.url is asked again whether it serves MSC4186 itself.
func TestSlidingSyncReload(t *testing.T) {
	t.Parallel()
	up := newSSUpstream(t, dendriteVersions, 0)
	httpAddr := freeport.Addr(t)
	dir := t.TempDir()
	yaml := func(upstream, ss string) string {
		return edgeconf.New(edgeconf.Listen(httpAddr, "", "", ""), edgeconf.Upstream(upstream, "max_body: 1KiB")) +
			fmt.Sprintf("sliding_sync: {store: %q%s}\n", filepath.Join(dir, "ss.db"), ss)
	}
	edge := startEdge(t, yaml(up.URL, ""), onListeners)
	wait.TCP(t, httpAddr)
	base := "http://" + httpAddr
	reload := func(cfgYAML string, mutate func(*config.Config)) error {
		return edge.srv.Reload(context.Background(), func() (*config.Config, error) {
			cfg, problems := config.Parse("edge.yaml", []byte(cfgYAML))
			if errs := problems.Errors(); len(errs) > 0 {
				return nil, fmt.Errorf("%v", errs)
			}
			if mutate != nil {
				mutate(cfg)
			}
			return cfg, nil
		})
	}
	atEdge := func(when string) {
		t.Helper()
		resp, body := ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
		assertMissingToken(t, resp, body)
		_, body = ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil)
		assertAmended(t, body, dendriteVersions)
	}
	atEdge("at start")

	if err := reload(yaml(up.URL, ", enabled: false"), nil); err != nil {
		t.Fatal(err)
	}
	resp, body := ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
	if resp.StatusCode != 200 || up.seen(slidingsync.Path) != 1 {
		t.Errorf("after a reload turning it off: %d %s, the homeserver saw the path %d times", resp.StatusCode, body, up.seen(slidingsync.Path))
	}
	if _, body := ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil); string(body) != dendriteVersions {
		t.Error("/versions after a reload turning it off is not byte for byte the homeserver's")
	}

	if err := reload(yaml(up.URL, ""), nil); err != nil {
		t.Fatal(err)
	}
	atEdge("turned on again")

	// A store that cannot be opened (its directory would be under a
	// file): the reload fails, and nothing changes.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	err := reload(yaml(up.URL, ", idle_timeout: 5m"), func(c *config.Config) { c.SlidingSync.SQLitePath = filepath.Join(file, "ss.db") })
	if err == nil || !strings.Contains(err.Error(), "sliding_sync.store") {
		t.Errorf("a reload to a store that cannot be opened: %v; want it refused, naming sliding_sync.store", err)
	}
	atEdge("after a failed reload")
	if edge.srv.config().SlidingSync.IdleTimeout != 10*time.Minute {
		t.Error("the failed reload's configuration was applied")
	}
	// One that can, with another idle timeout: reopened.
	if err := reload(yaml(up.URL, ", idle_timeout: 5m"), nil); err != nil {
		t.Fatal(err)
	}
	atEdge("reopened")

	// Another homeserver, which serves MSC4186 itself: asked again.
	synapse := newSSUpstream(t, synapseVersions, 0)
	if err := reload(yaml(synapse.URL, ", idle_timeout: 5m"), nil); err != nil {
		t.Fatal(err)
	}
	resp, body = ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
	if resp.StatusCode != 200 || synapse.seen(slidingsync.Path) != 1 {
		t.Errorf("after a reload to a homeserver that serves it: %d %s, it saw the path %d times", resp.StatusCode, body, synapse.seen(slidingsync.Path))
	}
}

// TestSlidingSyncStoreDirectory: the default store, slidingsync.db in the
// state directory, is created at start; so is a store's directory, this
// user's only (the database holds access tokens); an edge whose store
// cannot be opened does not start, saying why.
func TestSlidingSyncStoreDirectory(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("STATE_DIRECTORY", state)
	up := newSSUpstream(t, dendriteVersions, 0)
	httpAddr := freeport.Addr(t)
	base := edgeconf.New(edgeconf.Listen(httpAddr, "", "", ""), edgeconf.Upstream(up.URL))
	edge := startEdge(t, base, onListeners)
	wait.TCP(t, httpAddr)
	if st, err := os.Stat(filepath.Join(state, "slidingsync.db")); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("the default store: %v; want slidingsync.db created in $STATE_DIRECTORY", err)
	}
	resp, body := ssDo(t, nil, "POST", "http://"+httpAddr+slidingsync.Path, strings.NewReader(`{}`))
	assertMissingToken(t, resp, body)
	edge.stop()

	dir := filepath.Join(t.TempDir(), "a", "b")
	edge = startEdge(t, base+fmt.Sprintf("sliding_sync: {store: %q}\n", filepath.Join(dir, "ss.db")), onListeners)
	wait.TCP(t, httpAddr)
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("the store's directory: %v %v; want it created, mode 0700", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ss.db")); err != nil {
		t.Fatalf("the store: %v", err)
	}
	edge.stop()

	// Its directory under a file: Run ends with the reason.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	cfg, problems := config.Parse("edge.yaml", []byte(base))
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg.SlidingSync.SQLitePath = filepath.Join(file, "ss", "slidingsync.db")
	err = New(cfg, slog.New(slog.DiscardHandler)).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sliding_sync.store") {
		t.Fatalf("Run with a store that cannot be opened: %v", err)
	}
}

// TestSlidingSyncPostgresStore: with a postgres:// tls.storage, the store
// is that database, reached with tls.storage_password_file's password:
// its slidingsync_ tables are there once the edge has started.
func TestSlidingSyncPostgresStore(t *testing.T) {
	pg := pgtest.Start(t)
	up := newSSUpstream(t, dendriteVersions, 0)
	addr := freeport.Addr(t)
	edge := startEdge(t, edgeconf.New(edgeconf.Listen("", addr, "", "", "http3: false"),
		edgeconf.Internal(pg.URL, fmt.Sprintf("storage_password_file: %q", pg.PasswordFile)), edgeconf.Upstream(up.URL)), onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	if got := edge.srv.config().SlidingSync; got.SQLitePath != "" || !strings.Contains(got.PostgresURL, ":"+pg.Password+"@") {
		t.Fatalf("store resolved to sqlite %q, postgres %q; want tls.storage's database with its password", got.SQLitePath, got.PostgresURL)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	resp, body := ssDo(t, client, "POST", "https://matrix.example.com"+slidingsync.Path, strings.NewReader(`{}`))
	assertMissingToken(t, resp, body)
	tables := pg.Query("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'slidingsync\\_%' ORDER BY 1")
	if !strings.Contains(tables, "slidingsync_devices") {
		t.Fatalf("tables in tls.storage's database: %q; want the slidingsync_ ones", tables)
	}
}

// TestSlidingSyncHTTP2And3: the sliding-sync path over HTTP/2 and HTTP/3
// is the edge's too, with HSTS, and /versions is amended on both.
func TestSlidingSyncHTTP2And3(t *testing.T) {
	t.Parallel()
	up := newSSUpstream(t, dendriteVersions, 0)
	addr := freeport.Addr(t)
	cfg := edgeconf.New(edgeconf.Listen("", addr, "", "", "http3: true"), edgeconf.Internal(t.TempDir(), "hsts: {max_age: 1h}"),
		edgeconf.Upstream(up.URL)) + fmt.Sprintf("sliding_sync: {store: %q}\n", filepath.Join(t.TempDir(), "ss.db"))
	edge := startEdge(t, cfg, onListeners)
	roots := edge.localCA(t, addr, "matrix.example.com")
	h3, tr := h3Client(addr, roots)
	defer tr.Close()
	h2 := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, DisableCompression: true, TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	for _, c := range []struct {
		name   string
		client *http.Client
		proto  int
	}{{"HTTP/2", h2, 2}, {"HTTP/3", h3, 3}} {
		resp, body := ssDo(t, c.client, "POST", "https://matrix.example.com"+slidingsync.Path, strings.NewReader(`{"lists":{}}`))
		if resp.ProtoMajor != c.proto {
			t.Fatalf("%s: answered over %s", c.name, resp.Proto)
		}
		assertMissingToken(t, resp, body)
		if hsts := resp.Header.Get("Strict-Transport-Security"); hsts != "max-age=3600" {
			t.Errorf("%s: Strict-Transport-Security %q on the edge's sliding-sync answer", c.name, hsts)
		}
		resp, body = ssDo(t, c.client, "GET", "https://matrix.example.com/_matrix/client/versions", nil)
		if resp.ProtoMajor != c.proto {
			t.Fatalf("%s: answered over %s", c.name, resp.Proto)
		}
		assertAmended(t, body, dendriteVersions)
	}
	if n := up.seen(slidingsync.Path); n != 0 {
		t.Errorf("the sliding-sync path reached the homeserver %d times", n)
	}
}

// TestSlidingSyncFederationListener: listen.federation answers the path
// as the https listener does when it serves the client API
// (federation_client_api), and leaves it alone when it serves only
// federation.
func TestSlidingSyncFederationListener(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		clientAPI bool
		status    int
		errcode   string
	}{{true, 401, "M_MISSING_TOKEN"}, {false, 404, "M_UNRECOGNIZED"}} {
		t.Run(fmt.Sprintf("federation_client_api %t", c.clientAPI), func(t *testing.T) {
			t.Parallel()
			up := newSSUpstream(t, dendriteVersions, 0)
			addr := freeport.Addr(t)
			cfg := edgeconf.New(edgeconf.Listen("", "", addr, "", "http3: false", fmt.Sprintf("federation_client_api: %t", c.clientAPI)),
				edgeconf.Internal(t.TempDir()), edgeconf.Upstream(up.URL)) +
				fmt.Sprintf("sliding_sync: {store: %q}\n", filepath.Join(t.TempDir(), "ss.db"))
			edge := startEdge(t, cfg, onListeners)
			roots := edge.localCA(t, addr, "matrix.example.com")
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				}}}
			resp, body := ssDo(t, client, "POST", "https://matrix.example.com:8448"+slidingsync.Path, strings.NewReader(`{}`))
			var e struct{ Errcode string }
			json.Unmarshal(body, &e)
			if resp.StatusCode != c.status || e.Errcode != c.errcode {
				t.Errorf("sliding sync on the federation listener: %d %s; want %d %s", resp.StatusCode, body, c.status, c.errcode)
			}
			if n := up.seen(slidingsync.Path); n != 0 {
				t.Errorf("the sliding-sync path reached the homeserver %d times", n)
			}
		})
	}
}

// TestSlidingSyncUnparsableVersions: a /versions answer that is not a JSON
// object reaches the client as the homeserver sent it, and teaches the
// edge nothing (it still serves the path).
func TestSlidingSyncUnparsableVersions(t *testing.T) {
	t.Parallel()
	for _, versions := range []string{`<html>Bad gateway</html>`, `["v1.11"]`, `{"unstable_features":[1]}`} {
		up := newSSUpstream(t, versions, 0)
		_, base := ssEdge(t, up.URL, "")
		resp, body := ssDo(t, nil, "GET", base+"/_matrix/client/versions", nil)
		if resp.StatusCode != 200 || string(body) != versions || resp.Header.Get("ETag") != `"v1"` {
			t.Errorf("/versions %s: %d %s, ETag %q; want it unchanged", versions, resp.StatusCode, body, resp.Header.Get("ETag"))
		}
		resp, body = ssDo(t, nil, "POST", base+slidingsync.Path, strings.NewReader(`{}`))
		assertMissingToken(t, resp, body)
	}
}

// BenchmarkSlidingSyncVersions: GET /versions through a running edge,
// amended (sliding sync on) and passed through (off), one client.
func BenchmarkSlidingSyncVersions(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"versions":["r0.6.1","v1.1","v1.2","v1.3","v1.4","v1.5","v1.6","v1.7","v1.8","v1.9","v1.10","v1.11"],"unstable_features":{"org.matrix.msc3916.stable":true}}`)
	}))
	defer up.Close()
	for _, c := range []struct{ name, more string }{{"amended", ""}, {"off", ", enabled: false"}} {
		b.Run(c.name, func(b *testing.B) {
			httpAddr := freeport.Addr(b)
			startEdge(b, edgeconf.New(edgeconf.Listen(httpAddr, "", "", ""), edgeconf.Upstream(up.URL))+
				fmt.Sprintf("sliding_sync: {store: %q%s}\n", filepath.Join(b.TempDir(), "ss.db"), c.more), onListeners)
			wait.TCP(b, httpAddr)
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			req, _ := http.NewRequest("GET", "http://"+httpAddr+"/_matrix/client/versions", nil)
			req.Host = "matrix.example.com"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
