package server

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// h2StalledStreams opens HTTP/2 connections to addr that grant no stream
// any window (SETTINGS_INITIAL_WINDOW_SIZE 0) and asks for path on
// authority on n streams in all, 100 a connection, with the header fields
// hdr (name, value, …). It keeps reading frames (settings, the headers of
// the answers, never their bodies) and returns the connections.
func h2StalledStreams(t *testing.T, addr, authority, path string, n int, hdr ...string) []*tls.Conn {
	t.Helper()
	var conns []*tls.Conn
	for n > 0 {
		c, fr := h2Dial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		conns = append(conns, c)
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for i := range min(n, 100) {
			hb.Reset()
			fields := append([]string{":method", "GET", ":scheme", "https", ":authority", authority, ":path", path}, hdr...)
			for j := 0; j+1 < len(fields); j += 2 {
				enc.WriteField(hpack.HeaderField{Name: fields[j], Value: fields[j+1]})
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
		}
		n -= min(n, 100)
		go func() {
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
					fr.WriteSettingsAck()
				}
			}
		}()
	}
	return conns
}

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestStalledCompressedStreamsHoldNoEncoder: HTTP/2 streams that ask for a
// large /sync answer in zstd and never read it cost the edge little heap
// each while they stall (an encoder is ~1.4 MiB), and once they are gone
// the memory is back.
func TestStalledCompressedStreamsHoldNoEncoder(t *testing.T) {
	for _, enc := range []string{encZstd, encGzip} {
		t.Run(enc, func(t *testing.T) { stalledCompressedStreams(t, enc) })
	}
}

func stalledCompressedStreams(t *testing.T, enc string) {
	const streams = 150
	answer := syncLike(256 << 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	defer up.Close()
	addr := freeport.Addr(t)
	// A send timeout far beyond the test: the streams stall for as long as
	// the test wants.
	edge := startEdge(t, h3Config(t, addr, up.URL, false)+"limits: {send_timeout: 10m}\n", onListeners)
	edge.localCA(t, addr, "matrix.example.com")
	// One stream read to its end first, so that the baseline has the
	// pools and buffers a served request leaves behind.
	if resp, body := rawGetTLS(t, addr, "/_matrix/client/v3/sync", "Accept-Encoding", enc); resp.Header.Get("Content-Encoding") != enc || !bytes.Equal(decode(t, enc, body), answer) {
		t.Fatalf("a %s answer read in full: Content-Encoding %q", enc, resp.Header.Get("Content-Encoding"))
	}
	base := heapInUse()
	conns := h2StalledStreams(t, addr, "matrix.example.com", "/_matrix/client/v3/sync", streams, "accept-encoding", enc)
	wait.True(t, "the stalled streams to be answered", 20*time.Second, func() bool { return edge.inFlight(t) >= streams })
	// Each stalled stream lets its encoder go after holdIdle.
	wait.True(t, "the stalled streams to let their encoders go", 20*time.Second, func() bool {
		return edge.metricValue(t, "wellknownd_compress_encoders_in_use") == 0
	})
	stalled := heapInUse()
	perStream := (stalled - base) / streams
	t.Logf("heap: %d KiB before, %d KiB with %d stalled %s streams: %d KiB a stream", base>>10, stalled>>10, streams, enc, perStream>>10)
	if perStream > 256<<10 {
		t.Errorf("each stalled %s stream holds %d KiB of heap", enc, perStream>>10)
	}
	for _, c := range conns {
		c.Close()
	}
	wait.True(t, "the stalled streams to end", 20*time.Second, func() bool { return edge.inFlight(t) <= 1 })
	var after int64
	wait.True(t, "the heap to come back", 20*time.Second, func() bool {
		after = heapInUse()
		return after < base+16<<20
	})
	t.Logf("heap after they left: %d KiB", after>>10)
}

// rawGetTLS sends a GET to the edge's TLS listener at addr for
// matrix.example.com over HTTP/2, without transparent decompression.
func rawGetTLS(t *testing.T, addr, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "https://matrix.example.com"+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	tr := &http.Transport{DisableCompression: true, ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: "matrix.example.com", NextProtos: []string{"h2"}}}).DialContext(ctx, network, addr)
		}}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
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

// TestCompressedStreamCarriesOnAfterAStall: a client that stops reading a
// compressed answer mid-way (its encoder is let go meanwhile) and then
// reads on gets the whole answer, one valid zstd stream or gzip member.
func TestCompressedStreamCarriesOnAfterAStall(t *testing.T) {
	answer := syncLike(512 << 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	defer up.Close()
	addr := freeport.Addr(t)
	edge := startEdge(t, h3Config(t, addr, up.URL, false)+"limits: {send_timeout: 10m}\n", onListeners)
	edge.localCA(t, addr, "matrix.example.com")
	for _, enc := range []string{encZstd, encGzip} {
		t.Run(enc, func(t *testing.T) {
			_, fr := h2Dial(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
			var hb bytes.Buffer
			he := hpack.NewEncoder(&hb)
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "matrix.example.com"},
				{":path", "/_matrix/client/v3/sync"}, {"accept-encoding", enc}} {
				he.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
			frames := make(chan http2.Frame)
			go func() {
				defer close(frames)
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					if d, ok := f.(*http2.DataFrame); ok {
						// The framer reuses its buffer.
						f = &copiedData{data: bytes.Clone(d.Data()), end: d.StreamEnded()}
					}
					frames <- f
				}
			}()
			var contentEncoding string
			dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
				if f.Name == "content-encoding" {
					contentEncoding = f.Value
				}
			})
			for contentEncoding == "" {
				select {
				case f := <-frames:
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							fr.WriteSettingsAck()
						}
					case *http2.HeadersFrame:
						dec.Write(f.HeaderBlockFragment())
						if contentEncoding == "" {
							t.Fatal("the answer is not compressed")
						}
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no answer")
				}
			}
			if contentEncoding != enc {
				t.Fatalf("Content-Encoding %q", contentEncoding)
			}
			// Mid-answer, with nothing sent, the encoder goes back.
			wait.True(t, "the stalled answer to let its encoder go", 10*time.Second, func() bool {
				return edge.metricValue(t, "wellknownd_compress_encoders_in_use") == 0
			})
			fr.WriteWindowUpdate(0, 1<<30)
			fr.WriteWindowUpdate(1, 1<<30)
			var body []byte
			for done := false; !done; {
				select {
				case f, ok := <-frames:
					if !ok {
						t.Fatal("the connection ended mid-answer")
					}
					if d, ok := f.(*copiedData); ok {
						body = append(body, d.data...)
						done = d.end
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("the answer stopped after %d bytes", len(body))
				}
			}
			var got []byte
			if enc == encGzip {
				// One member, read by the standard library's reader.
				g, err := stdgzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				g.Multistream(false)
				if got, err = io.ReadAll(g); err != nil {
					t.Fatal(err)
				}
			} else {
				got = decode(t, enc, body)
			}
			if !bytes.Equal(got, answer) {
				t.Fatalf("decoded %d bytes, want the %d of the answer", len(got), len(answer))
			}
		})
	}
}

type copiedData struct {
	http2.Frame
	data []byte
	end  bool
}

// TestCompressionBudget: with every encoder in use, an answer goes out
// uncompressed (still saying Vary), and is compressed again once one is
// free.
func TestCompressionBudget(t *testing.T) {
	answer := syncLike(64 << 10)
	stop := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/_matrix/client/v3/stream" {
			w.Write(answer)
			return
		}
		// A stream that keeps its encoder busy: a chunk every 100 ms.
		for {
			w.Write(answer[:4<<10])
			w.(http.Flusher).Flush()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}))
	defer up.Close()
	ts := startEdge(t, edgeconf.Plain(up.URL, "1MiB")+"limits: {compress_encoders: 1}\n")
	req, _ := http.NewRequest("GET", ts.URL+"/_matrix/client/v3/stream", nil)
	req.Host = "matrix.example.com"
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go io.Copy(io.Discard, resp.Body)
	if resp.Header.Get("Content-Encoding") != "zstd" {
		t.Fatalf("the stream: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	wait.True(t, "the stream to hold the one encoder", 10*time.Second, func() bool {
		return ts.metricValue(t, "wellknownd_compress_encoders_in_use") == 1
	})
	r2, body := rawGet(t, ts, "/_matrix/client/v3/sync", "Accept-Encoding", "zstd")
	if r2.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, answer) || !strings.Contains(strings.Join(r2.Header.Values("Vary"), ","), "Accept-Encoding") {
		t.Errorf("with no encoder free: Content-Encoding %q, %d bytes, Vary %q", r2.Header.Get("Content-Encoding"), len(body), r2.Header.Values("Vary"))
	}
	if n := ts.metricValue(t, "wellknownd_compress_budget_exhausted_total"); n < 1 {
		t.Errorf("wellknownd_compress_budget_exhausted_total %v", n)
	}
	close(stop)
	wait.True(t, "the stream to give its encoder back", 10*time.Second, func() bool {
		return ts.metricValue(t, "wellknownd_compress_encoders_in_use") == 0
	})
	if r3, body := rawGet(t, ts, "/_matrix/client/v3/sync", "Accept-Encoding", "zstd"); r3.Header.Get("Content-Encoding") != "zstd" || !bytes.Equal(decode(t, "zstd", body), answer) {
		t.Errorf("once the encoder is free: Content-Encoding %q", r3.Header.Get("Content-Encoding"))
	}
}
