package server

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
)

func TestNegotiateEncoding(t *testing.T) {
	for header, want := range map[string]string{
		"":                                "",
		"gzip":                            "gzip",
		"gzip, deflate, br, zstd":         "zstd",
		"zstd;q=0.5, gzip":                "gzip",
		"gzip;q=0.5, zstd;q=0.5":          "zstd",
		"zstd;q=0, gzip;q=0":              "",
		"identity":                        "",
		"*":                               "gzip",
		"*;q=0":                           "",
		"br":                              "",
		"GZIP ; Q=0.8":                    "gzip",
		"zstd;q=abc, gzip;q=0.1":          "gzip",
		"x-gzip":                          "gzip",
		"zstd;q=1.5":                      "",
		"deflate, gzip;q=1.0, *;q=0.5":    "gzip",
		"zstd;level=3;q=0.9, gzip;q=0.95": "gzip",
	} {
		if got := negotiateEncoding(header); got != want {
			t.Errorf("Accept-Encoding %q: %q, want %q", header, got, want)
		}
	}
}

// syncLike is JSON shaped like a /sync answer: many events, much repetition.
func syncLike(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"next_batch":"s72595_4483_1934","rooms":{"join":{"!room:example.com":{"timeline":{"events":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"m.room.message","sender":"@user%d:example.com","event_id":"$%016x","origin_server_ts":%d,"content":{"msgtype":"m.text","body":"message number %d in the room"},"unsigned":{"age":%d}}`,
			i%17, i*7919, 1700000000000+i, i, i%1000)
	}
	b.WriteString(`]}}}}}`)
	return b.Bytes()
}

// rawGet sends a request without Go's transparent decompression, so the
// test sees exactly what crossed the wire.
func rawGet(t testing.TB, ts *testEdge, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	req.Host = "matrix.example.com"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decode(t testing.TB, encoding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch encoding {
	case "zstd":
		d, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	case "gzip":
		g, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = g
	default:
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", encoding, err)
	}
	return out
}

// TestCompressionOnTheWire: what is compressed and what is not, with the
// headers a cache and a client need.
func TestCompressionOnTheWire(t *testing.T) {
	big := syncLike(100 << 10)
	var seenIfNoneMatch string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_matrix/client/v3/sync":
			seenIfNoneMatch = r.Header.Get("If-None-Match")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("ETag", `"sync1"`)
			w.Write(big)
		case "/_matrix/client/v3/small":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"ok":true}`))
		case "/_matrix/client/v3/png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(big)
		case "/_matrix/client/v1/media/download/example.com/abc":
			w.Header().Set("Content-Type", "application/json")
			w.Write(big)
		case "/_matrix/client/v3/brotli":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "br")
			w.Write(big[:5000])
		case "/_matrix/client/v3/ranged":
			http.ServeContent(w, r, "x.json", time.Time{}, bytes.NewReader(big))
		}
	}))
	defer up.Close()
	ts := startEdge(t, edgeconf.Plain(up.URL, "1MiB"))

	for _, tc := range []struct {
		name, path, accept, rng string
		wantEnc                 string
		wantVary                bool
	}{
		{"zstd", "/_matrix/client/v3/sync", "gzip, zstd", "", "zstd", true},
		{"gzip by weight", "/_matrix/client/v3/sync", "zstd;q=0.5, gzip", "", "gzip", true},
		{"nothing acceptable", "/_matrix/client/v3/sync", "zstd;q=0, gzip;q=0", "", "", false},
		{"small body", "/_matrix/client/v3/small", "zstd", "", "", true},
		{"not text", "/_matrix/client/v3/png", "zstd", "", "", false},
		{"media", "/_matrix/client/v1/media/download/example.com/abc", "zstd", "", "", false},
		{"already encoded", "/_matrix/client/v3/brotli", "zstd", "", "br", false},
		{"range", "/_matrix/client/v3/ranged", "zstd", "bytes=0-99", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{"Accept-Encoding", tc.accept}
			if tc.rng != "" {
				hdr = append(hdr, "Range", tc.rng)
			}
			resp, body := rawGet(t, ts, tc.path, hdr...)
			if got := resp.Header.Get("Content-Encoding"); got != tc.wantEnc {
				t.Fatalf("Content-Encoding %q, want %q (status %d, %d bytes: %.200q)", got, tc.wantEnc, resp.StatusCode, len(body), body)
			}
			if got := strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Accept-Encoding"); got != tc.wantVary {
				t.Errorf("Vary %q", resp.Header.Values("Vary"))
			}
			if tc.wantEnc == "zstd" || tc.wantEnc == "gzip" {
				if !bytes.Equal(decode(t, tc.wantEnc, body), big) {
					t.Fatal("the decoded body differs")
				}
				if resp.Header.Get("Content-Length") != "" || resp.Header.Get("ETag") != `"sync1-`+tc.wantEnc+`"` {
					t.Errorf("Content-Length %q, ETag %q", resp.Header.Get("Content-Length"), resp.Header.Get("ETag"))
				}
				t.Logf("%s: %d bytes for %d (%.1f×)", tc.wantEnc, len(body), len(big), float64(len(big))/float64(len(body)))
			}
			if tc.rng != "" && (resp.StatusCode != http.StatusPartialContent || len(body) != 100) {
				t.Errorf("range: %d, %d bytes", resp.StatusCode, len(body))
			}
		})
	}
	// The compressed answer's tag, sent back, reaches the upstream as its own.
	rawGet(t, ts, "/_matrix/client/v3/sync", "Accept-Encoding", "zstd", "If-None-Match", `"sync1-zstd"`)
	if seenIfNoneMatch != `"sync1"` {
		t.Errorf("upstream saw If-None-Match %q", seenIfNoneMatch)
	}
	// Off in the configuration: nothing is compressed.
	off := startEdge(t, edgeconf.Plain(up.URL, "1MiB")+"compression: {enabled: false}\n")
	if resp, _ := rawGet(t, off, "/_matrix/client/v3/sync", "Accept-Encoding", "zstd"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("compression off, yet Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
}

// TestCompressionHonoursTheUpstream: an answer marked no-transform goes
// out as the upstream wrote it (RFC 9110, section 7.7), and a 304 to a
// client revalidating a compressed answer names the tag that client holds.
func TestCompressionHonoursTheUpstream(t *testing.T) {
	big := syncLike(64 << 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"v1"`)
		if r.URL.Path == "/_matrix/client/v3/signed" {
			w.Header().Set("Cache-Control", "private, no-transform")
		}
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(big)
	}))
	defer up.Close()
	ts := startEdge(t, edgeconf.Plain(up.URL, "1MiB"))
	resp, body := rawGet(t, ts, "/_matrix/client/v3/signed", "Accept-Encoding", "zstd, gzip")
	if enc := resp.Header.Get("Content-Encoding"); enc != "" || !bytes.Equal(body, big) || resp.Header.Get("ETag") != `"v1"` {
		t.Errorf("no-transform answer: Content-Encoding %q, ETag %q, %d bytes (want %d as sent)", enc, resp.Header.Get("ETag"), len(body), len(big))
	}
	// The control: the same answer without no-transform is compressed.
	resp, _ = rawGet(t, ts, "/_matrix/client/v3/plain", "Accept-Encoding", "zstd")
	if resp.Header.Get("Content-Encoding") != "zstd" || resp.Header.Get("ETag") != `"v1-zstd"` {
		t.Fatalf("compressed answer: Content-Encoding %q, ETag %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("ETag"))
	}
	for _, enc := range []string{"zstd", "gzip"} {
		resp, _ = rawGet(t, ts, "/_matrix/client/v3/plain", "Accept-Encoding", enc, "If-None-Match", `"v1-`+enc+`"`)
		if resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != `"v1-`+enc+`"` {
			t.Errorf("revalidating the %s answer: %d, ETag %q", enc, resp.StatusCode, resp.Header.Get("ETag"))
		}
	}
	resp, _ = rawGet(t, ts, "/_matrix/client/v3/plain", "Accept-Encoding", "zstd", "If-None-Match", `"v1"`)
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != `"v1"` {
		t.Errorf("revalidating the plain answer: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
}

// TestCompressedStreamFlushes: a streamed answer is compressed as it is
// written, and what the upstream flushed reaches the client before the
// rest exists.
func TestCompressedStreamFlushes(t *testing.T) {
	first, rest := syncLike(8<<10), []byte(`"and the end"`)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(first)
		w.(http.Flusher).Flush()
		<-release
		w.Write(rest)
	}))
	defer up.Close()
	defer close(release)
	ts := startEdge(t, edgeconf.Plain(up.URL, "1MiB"))
	req, _ := http.NewRequest("GET", ts.URL+"/_matrix/client/v3/sync?timeout=30000", nil)
	req.Host = "matrix.example.com"
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") != "zstd" {
		resp.Body.Close()
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	// One goroutine, so that the decoder returns what it has instead of
	// reading ahead for the next block.
	d, err := zstd.NewReader(resp.Body, zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	// The body first: closing it ends a decoder blocked on it.
	defer d.Close()
	defer resp.Body.Close()
	got := make([]byte, len(first))
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(d, got); done <- err }()
	select {
	case err := <-done:
		if err != nil || !bytes.Equal(got, first) {
			t.Fatalf("first part: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the flushed first part did not arrive while the upstream held the rest")
	}
}

// BenchmarkCompression: a 1 MiB /sync-like answer through the proxy with
// each encoding (bytes on the wire and time), and small JSON answers with
// compression on and off (requests per second):
//
//	go test ./server -run '^$' -bench Compression -benchtime 2s
func BenchmarkCompression(b *testing.B) {
	sync1M := syncLike(1 << 20)
	small := syncLike(600)
	medium := syncLike(4 << 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/_matrix/client/v3/sync":
			w.Write(sync1M)
		case "/_matrix/client/v3/small":
			w.Write(small)
		default:
			w.Write(medium)
		}
	}))
	defer up.Close()
	on := startEdge(b, edgeconf.Plain(up.URL, "1MiB"))
	off := startEdge(b, edgeconf.Plain(up.URL, "1MiB")+"compression: {enabled: false}\n")
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}}
	get := func(b *testing.B, ts *testEdge, path, accept string) int64 {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Host = "matrix.example.com"
		req.Header.Set("Accept-Encoding", accept)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return n
	}
	for _, enc := range []string{"identity", "zstd", "gzip"} {
		b.Run("sync-1MiB/"+enc, func(b *testing.B) {
			var wire int64
			for b.Loop() {
				wire = get(b, on, "/_matrix/client/v3/sync", enc)
			}
			b.ReportMetric(float64(wire), "wire-bytes")
			b.ReportMetric(float64(len(sync1M))/float64(wire), "ratio")
		})
	}
	for _, tc := range []struct{ name, path string }{{"json-600B", "/_matrix/client/v3/small"}, {"json-4KiB", "/_matrix/client/v3/medium"}} {
		for _, mode := range []struct {
			name string
			ts   *testEdge
		}{{"off", off}, {"on", on}} {
			b.Run(tc.name+"/compression-"+mode.name, func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						get(b, mode.ts, tc.path, "gzip, deflate, br, zstd")
					}
				})
			})
		}
	}
}

// jsLike is JavaScript shaped like a minified bundle: code that repeats
// with variations, and names and strings that do not (a real bundle
// compresses about fourfold with zstd, as this does).
func jsLike(size int) []byte {
	var b bytes.Buffer
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$0123456789"
		w := make([]byte, n)
		for i := range w {
			w[i] = letters[rng.IntN(len(letters))]
		}
		return string(w)
	}
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `function %s(e,t){var n=e.%s(t.%s);if(!n)throw new Error("%s "+t.%s);return n.%s.filter(function(r){return r.%s()===%q&&r.%s>%d})}`+"\n",
			word(3), word(6), word(5), word(14), word(4), word(7), word(5), word(10), word(2), rng.IntN(1e9))
	}
	return b.Bytes()
}

// BenchmarkStaticCompression: Element Web's largest bundle (8 MiB of
// JavaScript) from a static route, as a browser asks for it:
//
//	go test ./server -run '^$' -bench StaticCompression -benchtime 2s
func BenchmarkStaticCompression(b *testing.B) {
	dir := b.TempDir()
	bundle := jsLike(8 << 20)
	if err := os.WriteFile(filepath.Join(dir, "bundle.0123456789ab.js"), bundle, 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := edgeconf.New(edgeconf.Hosts("example.com", "matrix.example.com", "element.example.com"), edgeconf.Upstream("http://127.0.0.1:1")) +
		"routes:\n  - {host: element.example.com, static: " + dir + "}\n"
	ts := startEdge(b, cfg)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}}
	for _, enc := range []string{"identity", "zstd", "gzip"} {
		b.Run("bundle-8MiB/"+enc, func(b *testing.B) {
			var wire int64
			for b.Loop() {
				req, _ := http.NewRequest("GET", ts.URL+"/bundle.0123456789ab.js", nil)
				req.Host = "element.example.com"
				req.Header.Set("Accept-Encoding", enc)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				wire, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ReportMetric(float64(wire), "wire-bytes")
			b.ReportMetric(float64(len(bundle))/float64(wire), "ratio")
		})
	}
}

// TestWellKnownCompressedOnlyWhenLongEnough: the discovery documents are
// shorter than compression.min_length as a rule, and their requests then
// carry no compression state; a document that is long enough is still
// compressed, with the Vary that says so.
func TestWellKnownCompressedOnlyWhenLongEnough(t *testing.T) {
	for _, tc := range []struct {
		minLength string
		gzip      bool
	}{{"1KiB", false}, {"16B", true}} {
		ts := startEdge(t, edgeconf.New()+"compression: {min_length: "+tc.minLength+"}\n")
		resp, body := send(t, ts, "GET", "example.com", "/.well-known/matrix/client", nil, "Accept-Encoding", "gzip")
		gz := resp.Header.Get("Content-Encoding") == "gzip"
		if resp.StatusCode != 200 || gz != tc.gzip || (resp.Header.Get("Vary") == "Accept-Encoding") != tc.gzip {
			t.Fatalf("min_length %s: status %d, Content-Encoding %q, Vary %q; want gzip %v",
				tc.minLength, resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"), tc.gzip)
		}
		if gz {
			zr, err := gzip.NewReader(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(zr)
			body = string(b)
		}
		if body != `{"m.homeserver":{"base_url":"https://matrix.example.com"}}` {
			t.Fatalf("min_length %s: body %q", tc.minLength, body)
		}
	}
}
