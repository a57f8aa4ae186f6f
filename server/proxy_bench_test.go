package server

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
)

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// procStatus reads a kB figure (VmRSS, VmHWM) of this process.
func procStatus(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// BenchmarkProxyUpload1GiB sends 1 GiB through the edge to an upstream
// that discards it, and reports how far the process's peak RSS rose above
// where it started: a body is buffered in a temporary file past its first
// 64 KiB, never in memory.
//
//	go test ./server -run '^$' -bench ProxyUpload1GiB -benchtime 1x
func BenchmarkProxyUpload1GiB(b *testing.B) {
	const size = 1 << 30
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Write([]byte(strconv.FormatInt(n, 10)))
	}))
	defer up.Close()
	ts := startEdge(b, edgeconf.Plain(up.URL, "2GiB"))
	b.SetBytes(size)
	var peak int64
	for b.Loop() {
		// Reset the high-water mark to the current RSS.
		os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		base := procStatus(b, "VmRSS")
		req, _ := http.NewRequest("POST", ts.URL+"/_matrix/media/v3/upload", io.LimitReader(zeros{}, size))
		req.Host = "matrix.example.com"
		req.ContentLength = size
		resp, err := ts.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(body, []byte(strconv.Itoa(size))) {
			b.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		peak = max(peak, procStatus(b, "VmHWM")-base)
	}
	b.ReportMetric(float64(peak)/1024, "peak-rss-growth-MB")
}

// benchSmall sends b.N requests through the edge, from as many clients as
// GOMAXPROCS, to an upstream answering a /versions-sized JSON document:
// the proxy's hot path. body, when not empty, is POSTed.
func benchSmall(b *testing.B, method, path, body string) {
	answer := []byte(`{"versions":["r0.6.1","v1.1","v1.2","v1.3","v1.4","v1.5","v1.6","v1.7","v1.8","v1.9","v1.10","v1.11"],"unstable_features":{"org.matrix.msc3575":true}}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.Write(answer)
	}))
	defer up.Close()
	ts := startEdge(b, edgeconf.Plain(up.URL, "1MiB"))
	tr := ts.Client().Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, _ := http.NewRequest(method, ts.URL+path, rd)
			req.Host = "matrix.example.com"
			resp, err := ts.Client().Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != int64(len(answer)) {
				b.Fatalf("%d, %d bytes", resp.StatusCode, n)
			}
		}
	})
}

// BenchmarkProxySmallGET is a small JSON answer to a GET: most of a
// Matrix client's traffic.
func BenchmarkProxySmallGET(b *testing.B) {
	benchSmall(b, "GET", "/_matrix/client/versions", "")
}

// BenchmarkProxySmallPOST is a message send: a small JSON body, a small
// JSON answer.
func BenchmarkProxySmallPOST(b *testing.B) {
	benchSmall(b, "PUT", "/_matrix/client/v3/rooms/%21r%3Aexample.com/send/m.room.message/1",
		`{"msgtype":"m.text","body":"Hello, this is a message of ordinary length sent to a room."}`)
}

// BenchmarkProxyDownload4MiB is a media download through the edge by a
// client that reads as fast as it can.
func BenchmarkProxyDownload4MiB(b *testing.B) {
	const size = 4 << 20
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, io.LimitReader(zeros{}, size))
	}))
	defer up.Close()
	ts := startEdge(b, edgeconf.Plain(up.URL, "1MiB"))
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", ts.URL+"/_matrix/client/v1/media/download/example.com/abc", nil)
		req.Host = "matrix.example.com"
		resp, err := ts.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != size {
			b.Fatalf("%d, %d bytes", resp.StatusCode, n)
		}
	}
}

// BenchmarkProxyChunkedJSON is an 8 KiB JSON answer without a length, as
// Go's net/http (Dendrite) sends anything over 2 KiB: an ordinary /sync or
// /messages answer, spooled.
func BenchmarkProxyChunkedJSON(b *testing.B) {
	answer := bytes.Repeat([]byte(`{"type":"m.room.message","content":{"body":"hello"}},`), 8<<10/52)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	defer up.Close()
	ts := startEdge(b, edgeconf.Plain(up.URL, "1MiB"))
	ts.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", ts.URL+"/_matrix/client/v3/sync?since=s1", nil)
			req.Host = "matrix.example.com"
			resp, err := ts.Client().Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != int64(len(answer)) {
				b.Fatalf("%d, %d bytes", resp.StatusCode, n)
			}
		}
	})
}
