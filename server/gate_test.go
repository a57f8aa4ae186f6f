package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestProxyBodyLimit(t *testing.T) {
	up := newRecorder(t)
	ts := startEdge(t, edgeConfig(up.URL))

	// Within the limit, the body arrives whole.
	resp, _ := send(t, ts, "POST", "matrix.example.com", "/_matrix/media/v3/upload", strings.NewReader(strings.Repeat("a", 1024)), "Content-Type", "application/octet-stream")
	if resp.StatusCode != 200 || up.last(t).bodyLen != 1024 {
		t.Fatalf("1 KiB upload: %d, upstream read %d bytes", resp.StatusCode, up.last(t).bodyLen)
	}
	before := up.count()

	// A declared length over the limit is refused at once: the client has
	// sent 10 bytes of a claimed 10 MB, and the answer still comes.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Type: image/png\r\nContent-Length: 10485760\r\n\r\n0123456789")
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to an oversized upload before its body: %v", err)
	}
	var body struct{ Errcode string }
	json.NewDecoder(r.Body).Decode(&body)
	if r.StatusCode != 413 || body.Errcode != "M_TOO_LARGE" || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("oversized upload: %d %+v %v", r.StatusCode, body, r.Header)
	}
	if up.count() != before {
		t.Fatalf("the oversized upload reached the upstream")
	}

	// A chunked body is cut where it passes the limit.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(strings.Repeat("b", 4096)))
		pw.Close()
	}()
	resp, b := send(t, ts, "POST", "matrix.example.com", "/_matrix/media/v3/upload", pr)
	if resp.StatusCode != 413 || !strings.Contains(b, "M_TOO_LARGE") {
		t.Fatalf("chunked oversized upload: %d %s", resp.StatusCode, b)
	}
}
