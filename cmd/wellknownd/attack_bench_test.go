package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wellknownd/wellknownd/internal/dendriteadmin"
	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/deploytest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// BenchmarkAttacksWithDendrite runs the slow-client attacks of the "slow or
// stalled client" issue, one after the other and then all at once, against
// the wellknownd binary (a process of its own, so that its memory and
// descriptors are its own) with the real Dendrite behind it, and reports
// what the other users see meanwhile: the latency of /_matrix/client/versions
// over new HTTPS connections (answered by Dendrite), /readyz, the edge's
// connections to Dendrite, its RSS and its descriptors. The bar: within 2×
// of the idle figures while an attack runs.
//
//	go test ./cmd/wellknownd -run '^$' -bench AttacksWithDendrite -benchtime 1x -timeout 30m
//
// ATTACK_SECONDS sets how long each attack runs before it is measured
// (default 20).
func BenchmarkAttacksWithDendrite(b *testing.B) {
	attackFor := 20 * time.Second
	if s, err := strconv.Atoi(os.Getenv("ATTACK_SECONDS")); err == nil && s > 0 {
		attackFor = time.Duration(s) * time.Second
	}
	den := dendritetest.Start(b, dendritetest.Options{ServerName: "example.com", MaxFileSize: 100 << 20})
	denPort := den.Addr[strings.LastIndexByte(den.Addr, ':')+1:]

	dir := b.TempDir()
	bin := deploytest.Build(b, dir)
	web := filepath.Join(dir, "element")
	os.MkdirAll(web, 0o755)
	os.WriteFile(filepath.Join(web, "index.html"), []byte("<!doctype html><title>Element</title>"), 0o644)
	// An application bundle as Element's: megabytes of compressible script.
	var bundle bytes.Buffer
	for i := 0; bundle.Len() < 4<<20; i++ {
		fmt.Fprintf(&bundle, "function f%d(a,b){return a.map(x=>x*%d+b).filter(Boolean)}\n", i, i)
	}
	os.WriteFile(filepath.Join(web, "bundle.js"), bundle.Bytes(), 0o644)

	httpAddr, tlsAddr, adminAddr := freeport.Addr(b), freeport.Addr(b), freeport.Addr(b)
	cfg := filepath.Join(dir, "wellknownd.yaml")
	os.WriteFile(cfg, []byte(edgeconf.New(
		edgeconf.Hosts("example.com", "matrix.example.com", "element.example.com"),
		edgeconf.Listen(httpAddr, tlsAddr, "", adminAddr),
		edgeconf.Internal(filepath.Join(dir, "state")),
		edgeconf.Upstream(den.URL, "max_body: 100MiB"))+
		"routes:\n  - {host: element.example.com, static: "+web+"}\n"), 0o644)
	daemon := exec.Command(bin, "serve", "-config", cfg, "-log-level", "error")
	daemon.Stderr = os.Stderr
	if err := daemon.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { daemon.Process.Signal(syscall.SIGTERM); daemon.Wait() }()
	wait.Until(b, "the edge to be ready", 60*time.Second, func() error { return readyz(adminAddr) })

	// Media to download: an 8 KiB file (as large as a JSON answer) and a
	// 4 MiB one (a photo, a video: no login needed to fetch it).
	token := dendriteLogin(b, den)
	small := uploadMedia(b, den.URL, token, 8<<10)
	large := uploadMedia(b, den.URL, token, 4<<20)

	st := &attackStats{edgePID: daemon.Process.Pid, dendritePort: denPort, tlsAddr: tlsAddr, adminAddr: adminAddr}
	st.begin()
	idle := st.measure(b, "idle")
	b.Logf("%-14s %s", "idle", idle)

	attacks := []struct {
		name string
		run  func(ctx context.Context) (holding int)
	}{
		// 32 connections × 128 streams that never open their windows, for
		// an answer of 8 KiB.
		{"h2-window-0", func(ctx context.Context) int {
			return st.h2Stalled(ctx, b, 32, 128, "matrix.example.com", "/_matrix/media/v3/download/"+small, nil)
		}},
		// 50 clients fetching 4 MiB with a 4 KiB receive buffer and never
		// reading.
		{"h1-no-read", func(ctx context.Context) int {
			return st.h1NoRead(ctx, b, 50, "/_matrix/media/v3/download/"+large)
		}},
		// 32 connections × 128 streams whose bodies trickle a byte at a
		// time, every 5 s.
		{"h2-trickle", func(ctx context.Context) int { return st.h2Trickle(ctx, b, 32, 128) }},
		// 90 connections × 128 streams stalled on Element's bundle: the
		// files they hold open.
		{"static-files", func(ctx context.Context) int {
			return st.h2Stalled(ctx, b, 90, 128, "element.example.com", "/bundle.js", nil)
		}},
		// 512 streams stalled on the bundle, asking for zstd: the encoders
		// they hold.
		{"static-zstd", func(ctx context.Context) int {
			return st.h2Stalled(ctx, b, 4, 128, "element.example.com", "/bundle.js", [][2]string{{"accept-encoding", "zstd"}})
		}},
		// 4 connections that open and cancel streams as fast as they can.
		{"rapid-reset", func(ctx context.Context) int { return st.rapidReset(ctx, b, 4) }},
	}
	for range b.N {
		var rows []attackFigures
		for _, a := range attacks {
			ctx, cancel := context.WithCancel(context.Background())
			st.begin()
			holding := a.run(ctx)
			time.Sleep(attackFor)
			f := st.measure(b, a.name)
			f.holding = holding
			rows = append(rows, f)
			b.Logf("%-14s %s", a.name, f)
			cancel()
			st.settle(b, idle)
		}
		ctx, cancel := context.WithCancel(context.Background())
		st.begin()
		holding := 0
		for _, a := range attacks {
			holding += a.run(ctx)
		}
		time.Sleep(attackFor)
		all := st.measure(b, "all at once")
		all.holding = holding
		rows = append(rows, all)
		b.Logf("%-14s %s", "all at once", all)
		cancel()
		st.settle(b, idle)

		b.Logf("ratios to idle (bar: ≤ 2): versions p50, p99; RSS; heap; descriptors")
		for _, f := range rows {
			b.Logf("%-14s %5.2f %5.2f  %5.2f  %5.2f  %6.2f  readyz %d, upstream busy %.0f, versions failed %d/%d",
				f.stage, ratio(f.p50, idle.p50), ratio(f.p99, idle.p99), f.rssMB/idle.rssMB, f.heapMB/idle.heapMB,
				float64(f.fds)/float64(idle.fds), f.readyz, f.busy, f.failed, f.tries)
		}
		b.ReportMetric(ratio(all.p50, idle.p50), "all-p50-ratio")
		b.ReportMetric(ratio(all.p99, idle.p99), "all-p99-ratio")
		b.ReportMetric(all.rssMB, "all-RSS-MB")
		b.ReportMetric(float64(all.fds), "all-fds")
		b.ReportMetric(all.busy, "all-upstream-busy")
		b.ReportMetric(float64(all.failed), "all-versions-failed")
	}
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(max(b, time.Microsecond)) }

func readyz(adminAddr string) error {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + adminAddr + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("readyz %d", resp.StatusCode)
	}
	return nil
}

// dendriteLogin registers a user on Dendrite and returns an access token.
func dendriteLogin(b *testing.B, den *dendritetest.Dendrite) string {
	ctx := context.Background()
	if _, err := dendriteadmin.Register(ctx, den.URL, "example.com", den.Secret, "mallory", "correct horse mallory", false); err != nil {
		b.Fatal(err)
	}
	body := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"mallory"},"password":"correct horse mallory"}`
	resp, err := http.Post(den.URL+"/_matrix/client/v3/login", "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		b.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

// uploadMedia stores n random-ish bytes on Dendrite and returns
// "server/media-id" for the download path.
func uploadMedia(b *testing.B, base, token string, n int) string {
	data := bytes.Repeat([]byte("0123456789abcdef"), n/16)
	req, _ := http.NewRequest("POST", base+"/_matrix/media/v3/upload?filename=f.bin", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !strings.HasPrefix(out.ContentURI, "mxc://") {
		b.Fatalf("upload: %d %v %q", resp.StatusCode, err, out.ContentURI)
	}
	return strings.TrimPrefix(out.ContentURI, "mxc://")
}

type attackStats struct {
	edgePID                          int
	dendritePort, tlsAddr, adminAddr string
	mu                               sync.Mutex
	conns                            []net.Conn
	// dialFailed counts the attacker's connections the edge did not take.
	dialFailed atomic.Int32
	// requests0, limited0: the edge's counts when the stage began.
	requests0, limited0 float64
}

// begin marks the start of a stage.
func (s *attackStats) begin() {
	_, s.requests0, s.limited0 = s.edgeMetrics()
	s.dialFailed.Store(0)
}

// edgeMetrics reads, from the edge's /metrics, the requests holding an
// upstream connection now (wellknownd_upstream_connections) and the
// requests answered so far in all and with 429.
func (s *attackStats) edgeMetrics() (busy, requests, limited float64) {
	m := s.edgeMetricsAll()
	return m.busy, m.requests, m.limited
}

type edgeFigures struct{ busy, requests, limited, heapMB, goroutines float64 }

// edgeMetricsAll reads, besides, the heap in use and the goroutines: RSS
// keeps what an earlier stage took (the runtime returns memory lazily), the
// heap shows what this one holds.
func (s *attackStats) edgeMetricsAll() (m edgeFigures) {
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Get("http://" + s.adminAddr + "/metrics")
	if err != nil {
		return edgeFigures{-1, -1, -1, -1, -1}
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		i := strings.LastIndexByte(l, ' ')
		if i < 0 || strings.HasPrefix(l, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(l[i+1:], 64)
		switch {
		case strings.HasPrefix(l, "wellknownd_upstream_connections{"):
			m.busy += v
		case strings.HasPrefix(l, "wellknownd_http_requests_total{"):
			m.requests += v
			if strings.Contains(l, `code="429"`) {
				m.limited += v
			}
		case strings.HasPrefix(l, "go_memstats_heap_inuse_bytes "):
			m.heapMB = v / (1 << 20)
		case strings.HasPrefix(l, "go_goroutines "):
			m.goroutines = v
		}
	}
	return m
}

func (s *attackStats) keep(c net.Conn) {
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
}

// closeAll ends every attacking connection.
func (s *attackStats) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// settle ends the attack and waits (bounded) for the edge to come back to
// about its idle figures, so that the next attack starts clean.
func (s *attackStats) settle(b *testing.B, idle attackFigures) {
	s.closeAll()
	wait.For(60*time.Second, func() error {
		if busy, _, _ := s.edgeMetrics(); busy > idle.busy+2 {
			return fmt.Errorf("%.0f upstream connections busy", busy)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
}

type attackFigures struct {
	stage         string
	p50, p99      time.Duration
	failed, tries int
	readyz        int
	upstream, fds int
	rssMB         float64
	holding       int
	// busy: requests holding an upstream connection (upstream counts the
	// sockets, idle pooled ones included); requests and limited: answered
	// in all and with 429 since the stage began.
	busy, requests, limited float64
	dialFailed              int32
	heapMB, goroutines      float64
}

func (f attackFigures) String() string {
	return fmt.Sprintf("versions p50 %6.2f ms p99 %7.2f ms (%d/%d failed), readyz %d, upstream busy %4.0f (sockets %4d), fds %5d, RSS %7.1f MB, heap %6.1f MB, goroutines %5.0f; attacker holds %d (%d dials refused); edge answered %.0f (%.0f with 429)",
		float64(f.p50.Microseconds())/1000, float64(f.p99.Microseconds())/1000, f.failed, f.tries, f.readyz, f.busy, f.upstream, f.fds, f.rssMB, f.heapMB, f.goroutines, f.holding, f.dialFailed, f.requests, f.limited)
}

// measure is what another user sees now: /versions over a new HTTPS
// connection each time (answered by Dendrite, through the edge), /readyz,
// and the edge's own figures.
func (s *attackStats) measure(b *testing.B, stage string) attackFigures {
	f := attackFigures{stage: stage, tries: 30}
	var lat []time.Duration
	for range f.tries {
		c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true, ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", s.tlsAddr)
			}}}
		start := time.Now()
		resp, err := c.Get("https://matrix.example.com/_matrix/client/versions")
		if err != nil {
			f.failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			f.failed++
			continue
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		f.p50, f.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	if resp, err := (&http.Client{Timeout: 15 * time.Second}).Get("http://" + s.adminAddr + "/readyz"); err == nil {
		f.readyz = resp.StatusCode
		resp.Body.Close()
	}
	f.upstream = s.upstreamConns()
	m := s.edgeMetricsAll()
	f.busy, f.heapMB, f.goroutines = m.busy, m.heapMB, m.goroutines
	f.requests, f.limited = m.requests-s.requests0, m.limited-s.limited0
	f.dialFailed = s.dialFailed.Load()
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.edgePID))
	f.fds = len(fds)
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.edgePID))
	for _, l := range strings.Split(string(status), "\n") {
		if fs := strings.Fields(l); len(fs) > 1 && fs[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(fs[1], 64)
			f.rssMB = kb / 1024
		}
	}
	return f
}

// upstreamConns counts the edge's TCP connections to Dendrite: its socket
// descriptors matched, by inode, to the kernel's table of connections
// whose remote port is Dendrite's.
func (s *attackStats) upstreamConns() int {
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.edgePID))
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", s.edgePID, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	port, _ := strconv.Atoi(s.dendritePort)
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", s.edgePID, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// sl local rem st ... inode (field 9)
			if len(fs) > 9 && strings.HasSuffix(fs[2], want) && fs[3] == "01" && inodes[fs[9]] {
				n++
			}
		}
		f.Close()
	}
	return n
}

// h2Conn dials the edge's TLS listener as an HTTP/2 client with settings.
func (s *attackStats) h2Conn(b *testing.B, host string, settings ...http2.Setting) (*tls.Conn, *http2.Framer) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.tlsAddr,
		&tls.Config{ServerName: host, InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		// The edge at its connection cap: the attacker gets less.
		s.dialFailed.Add(1)
		return nil, nil
	}
	s.keep(c)
	c.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(settings...)
	return c, fr
}

// readFrames answers SETTINGS and PINGs and otherwise ignores what the
// server sends, until the connection ends.
func readFrames(fr *http2.Framer, mu *sync.Mutex) {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				mu.Lock()
				fr.WriteSettingsAck()
				mu.Unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				mu.Lock()
				fr.WritePing(true, f.Data)
				mu.Unlock()
			}
		}
	}
}

func headerBlock(enc *hpack.Encoder, buf *bytes.Buffer, fields ...[2]string) []byte {
	buf.Reset()
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return buf.Bytes()
}

// h2Stalled opens conns connections that grant no stream a window and asks
// for path on streams streams of each.
func (s *attackStats) h2Stalled(ctx context.Context, b *testing.B, conns, streams int, host, path string, extra [][2]string) int {
	for range conns {
		_, fr := s.h2Conn(b, host, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		if fr == nil {
			continue
		}
		var mu sync.Mutex
		go readFrames(fr, &mu)
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		mu.Lock()
		for i := range streams {
			fields := append([][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", host}, {":path", path}}, extra...)
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: headerBlock(enc, &hb, fields...), EndStream: true, EndHeaders: true})
		}
		mu.Unlock()
	}
	return conns * streams
}

// h2Trickle opens conns connections of streams POSTs each, whose bodies
// come a byte every 5 s.
func (s *attackStats) h2Trickle(ctx context.Context, b *testing.B, conns, streams int) int {
	for c := range conns {
		_, fr := s.h2Conn(b, "matrix.example.com")
		if fr == nil {
			continue
		}
		var mu sync.Mutex
		go readFrames(fr, &mu)
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		mu.Lock()
		for i := range streams {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), EndHeaders: true, BlockFragment: headerBlock(enc, &hb,
				[2]string{":method", "PUT"}, [2]string{":scheme", "https"}, [2]string{":authority", "matrix.example.com"},
				[2]string{":path", fmt.Sprintf("/_matrix/client/v3/rooms/!r:example.com/send/m.room.message/t%d-%d", c, i)},
				[2]string{"content-type", "application/json"}, [2]string{"content-length", "100000"})})
		}
		mu.Unlock()
		go func() {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				mu.Lock()
				for i := range streams {
					fr.WriteData(uint32(2*i+1), false, []byte{'{'})
				}
				mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	return conns * streams
}

// h1NoRead opens n HTTPS connections with a 4 KiB receive buffer, asks for
// path on each and never reads.
func (s *attackStats) h1NoRead(ctx context.Context, b *testing.B, n int, path string) int {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	for range n {
		c, err := tls.DialWithDialer(d, "tcp", s.tlsAddr, &tls.Config{ServerName: "matrix.example.com", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			s.dialFailed.Add(1)
			continue
		}
		s.keep(c)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: matrix.example.com\r\n\r\n", path)
	}
	return n
}

// rapidReset opens conns connections that each open a stream and reset it
// at once, in a loop, until ctx ends.
func (s *attackStats) rapidReset(ctx context.Context, b *testing.B, conns int) int {
	for range conns {
		_, fr := s.h2Conn(b, "matrix.example.com")
		if fr == nil {
			continue
		}
		var mu sync.Mutex
		go readFrames(fr, &mu)
		go func() {
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			for id := uint32(1); ctx.Err() == nil && id < 1<<30; id += 2 {
				mu.Lock()
				err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndStream: true, EndHeaders: true, BlockFragment: headerBlock(enc, &hb,
					[2]string{":method", "GET"}, [2]string{":scheme", "https"}, [2]string{":authority", "matrix.example.com"},
					[2]string{":path", "/_matrix/client/versions"})})
				if err == nil {
					err = fr.WriteRSTStream(id, http2.ErrCodeCancel)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	return conns
}
