package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestExpectContinueCountsTheFinalStatus: an upload that asks for 100
// Continue is counted and logged with its final status, not 100.
func TestExpectContinueCountsTheFinalStatus(t *testing.T) {
	up := newRecorder(t)
	edge := startEdge(t, edgeConfig(up.URL))
	conn, err := net.Dial("tcp", edge.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: matrix.example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(conn)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first answer %q, want 100 Continue", line)
	}
	br.ReadString('\n')
	conn.Write([]byte("hello"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("final answer: %v %v", resp, err)
	}
	resp.Body.Close()
	metrics := edge.adminGET(t, "/metrics")
	if !strings.Contains(metrics, `wellknownd_http_requests_total{code="200",host="matrix.example.com",route="client"} 1`) ||
		strings.Contains(metrics, `code="100"`) {
		t.Fatalf("request counted as:\n%s", grepLines(metrics, "wellknownd_http_requests_total"))
	}
}
