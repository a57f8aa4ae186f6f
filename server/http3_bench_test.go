package server

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// oneWayDelay is added to every packet in each direction, as
// "tc qdisc add dev lo root netem delay 50ms" does (this machine's kernel
// has no netem, so a proxy in the benchmark does it): a round trip costs
// 100 ms more.
const oneWayDelay = 50 * time.Millisecond

type delayed struct {
	b  []byte
	at time.Time
}

// delayPipe forwards what read gives to write, each piece oneWayDelay
// after it arrived, in order.
func delayPipe(read func([]byte) (int, error), write func([]byte) error) {
	ch := make(chan delayed, 4096)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 64<<10)
			n, err := read(buf)
			if n > 0 {
				ch <- delayed{buf[:n], time.Now().Add(oneWayDelay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for d := range ch {
		time.Sleep(time.Until(d.at))
		if write(d.b) != nil {
			return
		}
	}
}

// delayTCP listens on loopback and forwards each connection to target
// with the delay; it returns its address.
func delayTCP(b *testing.B, target string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			write := func(w net.Conn) func([]byte) error {
				return func(p []byte) error { _, err := w.Write(p); return err }
			}
			go func() { delayPipe(c.Read, write(e)); e.Close() }()
			go func() { delayPipe(e.Read, write(c)); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// delayUDP forwards datagrams between clients and target with the delay.
func delayUDP(b *testing.B, target string) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close() })
	var mu sync.Mutex
	toTarget := map[string]chan delayed{}
	go func() {
		for {
			buf := make([]byte, 2048)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			ch, ok := toTarget[from.String()]
			if !ok {
				up, err := net.Dial("udp", target)
				if err != nil {
					mu.Unlock()
					continue
				}
				ch = make(chan delayed, 4096)
				toTarget[from.String()] = ch
				go func() {
					for d := range ch {
						time.Sleep(time.Until(d.at))
						up.Write(d.b)
					}
				}()
				go delayPipe(up.Read, func(p []byte) error { _, err := pc.WriteTo(p, from); return err })
			}
			mu.Unlock()
			ch <- delayed{buf[:n], time.Now().Add(oneWayDelay)}
		}
	}()
	return pc.LocalAddr().String()
}

// BenchmarkHTTP3Latency: 20 sequential small requests on a new connection
// over HTTP/2 (TCP + TLS 1.3) and over HTTP/3 (QUIC), with 50 ms added to
// each packet each way:
//
//	go test ./server -run '^$' -bench HTTP3Latency -benchtime 5x
func BenchmarkHTTP3Latency(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	addr := freeport.Addr(b)
	roots := startEdge(b, h3Config(b, addr, up.URL, true), onListeners).localCA(b, addr, "matrix.example.com")
	tcpAddr, udpAddr := delayTCP(b, addr), delayUDP(b, addr)
	const requests = 20
	run := func(b *testing.B, c *http.Client, proto int) {
		for range requests {
			resp, err := c.Get("https://matrix.example.com/.well-known/matrix/client")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != proto {
				b.Fatalf("%s, want HTTP/%d", resp.Proto, proto)
			}
		}
	}
	b.Run("h2", func(b *testing.B) {
		for b.Loop() {
			tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: roots},
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					// TCP's own handshake (SYN, SYN-ACK) is one round trip
					// that netem would delay and the proxy cannot: it is
					// added here.
					time.Sleep(2 * oneWayDelay)
					return (&net.Dialer{}).DialContext(ctx, network, tcpAddr)
				}}
			run(b, &http.Client{Transport: tr}, 2)
			tr.CloseIdleConnections()
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/20-requests")
	})
	b.Run("h3", func(b *testing.B) {
		for b.Loop() {
			tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
				Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
					return quic.DialAddrEarly(ctx, udpAddr, tlsCfg, cfg)
				}}
			run(b, &http.Client{Transport: tr}, 3)
			tr.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/20-requests")
	})
}
