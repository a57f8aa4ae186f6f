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

// BenchmarkProxyUpload1GiB streams 1 GiB through the edge to an upstream
// that discards it, and reports how far the process's peak RSS rose above
// where it started: the proxy must stream, never buffer a body.
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
