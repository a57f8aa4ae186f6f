package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wellknownd/wellknownd/internal/testing/deploytest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// BenchmarkHostileLoad holds 2,000 HTTPS clients that send request headers
// and then no body, and one HTTP/2 connection with 250 streams whose bodies
// never come, against the wellknownd binary (a process of its own, so that
// its descriptors and memory are its own), and reports what they make it
// hold: connections to the upstream, open descriptors, RSS, and the
// latency of /.well-known/matrix/server over new connections meanwhile.
//
//	go test ./cmd/wellknownd -run '^$' -bench HostileLoad -benchtime 1x
func BenchmarkHostileLoad(b *testing.B) {
	const slowClients, h2Streams = 2000, 250
	var upOpen, upPeak atomic.Int32
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"versions":["v1.11"]}`)) }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				if n := upOpen.Add(1); n > upPeak.Load() {
					upPeak.Store(n)
				}
			case http.StateClosed, http.StateHijacked:
				upOpen.Add(-1)
			}
		}}
	upLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go up.Serve(upLn)
	defer up.Close()

	dir := b.TempDir()
	bin := deploytest.Build(b, dir)
	httpAddr, tlsAddr, adminAddr := freeport.Addr(b), freeport.Addr(b), freeport.Addr(b)
	cfg := filepath.Join(dir, "wellknownd.yaml")
	os.WriteFile(cfg, []byte(edgeconf.New(
		edgeconf.Listen(httpAddr, tlsAddr, "", adminAddr),
		edgeconf.Internal(filepath.Join(dir, "state")),
		edgeconf.Upstream("http://"+upLn.Addr().String()))), 0o644)
	// HOSTILE_NOFILE runs the daemon with that descriptor limit (prlimit),
	// as with "ulimit -n 1024".
	argv := []string{bin, "serve", "-config", cfg, "-log-level", "error"}
	if n := os.Getenv("HOSTILE_NOFILE"); n != "" {
		argv = append([]string{"prlimit", "--nofile=" + n + ":" + n, "--"}, argv...)
	}
	daemon := exec.Command(argv[0], argv[1:]...)
	daemon.Stderr = os.Stderr
	if err := daemon.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { daemon.Process.Kill(); daemon.Wait() }()
	wait.Until(b, "the daemon to be ready", 30*time.Second, func() error {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	pid := daemon.Process.Pid
	measure := func(stage string) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		var rssKB float64
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "VmRSS:" {
				rssKB, _ = strconv.ParseFloat(f[1], 64)
			}
		}
		var lat []time.Duration
		failed := 0
		for range 50 {
			start := time.Now()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			req, _ := http.NewRequest("GET", "http://"+httpAddr+"/.well-known/matrix/server", nil)
			req.Host = "example.com"
			resp, err := c.Do(req)
			if err != nil || resp.StatusCode != 200 {
				failed++
				continue
			}
			resp.Body.Close()
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		p := func(q float64) float64 {
			if len(lat) == 0 {
				return -1
			}
			return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
		}
		b.Logf("%-8s upstream conns %d (peak %d), daemon fds %d, RSS %.1f MB, well-known p50 %.2f ms p99 %.2f ms, %d of 50 failed",
			stage, upOpen.Load(), upPeak.Load(), len(fds), rssKB/1024, p(0.5), p(0.99), failed)
		if stage == "held" {
			b.ReportMetric(float64(upPeak.Load()), "upstream-conns")
			b.ReportMetric(float64(len(fds)), "fds")
			b.ReportMetric(rssKB/1024, "RSS-MB")
			b.ReportMetric(p(0.5), "wk-p50-ms")
			b.ReportMetric(p(0.99), "wk-p99-ms")
			b.ReportMetric(float64(failed), "wk-failed")
		}
	}
	measure("idle")

	for range b.N {
		var held []net.Conn
		for i := range slowClients {
			// Over HTTPS and HTTP/1.1, as a Matrix client sends a message.
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", tlsAddr,
				&tls.Config{ServerName: "matrix.example.com", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err != nil {
				b.Fatalf("slow client %d: %v", i, err)
			}
			held = append(held, c)
			fmt.Fprintf(c, "POST /_matrix/client/v3/rooms/!r:example.com/send/m.room.message/%d HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", i)
		}
		refused := holdH2Streams(b, tlsAddr, h2Streams)
		time.Sleep(2 * time.Second)
		measure("held")
		b.Logf("HTTP/2: %d of %d streams refused by the server (h2_max_streams)", refused.Load(), h2Streams)
		b.ReportMetric(float64(refused.Load()), "h2-refused")
		for _, c := range held {
			c.Close()
		}
	}
}

// holdH2Streams opens one HTTP/2 connection and n POST streams on it
// whose bodies never come; it counts the streams the server refuses.
func holdH2Streams(b *testing.B, addr string, n int) *atomic.Int32 {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: "matrix.example.com", InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		b.Fatalf("negotiated %q, not h2", p)
	}
	conn.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	var refused atomic.Int32
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.RSTStreamFrame:
				refused.Add(1)
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range n {
		hb.Reset()
		for _, h := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "matrix.example.com"},
			{":path", "/_matrix/media/v3/upload"}, {"content-type", "application/octet-stream"}, {"content-length", "100"}} {
			enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			b.Fatal(err)
		}
	}
	return &refused
}
