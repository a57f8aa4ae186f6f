package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/syncbuf"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// daemon is a wellknownd started in-process through run(), as main does.
type daemon struct {
	t          *testing.T
	configPath string
	addrs      map[string]string // listener name → address it bound
	stderr     *syncbuf.Buffer
	cancel     context.CancelFunc
	done       chan error
}

// listeningRE finds the listeners' addresses in the log, in the text or the
// JSON format.
var listeningRE = regexp.MustCompile(`msg=listening listener=(\w+) addr=(\S+)|"msg":"listening","listener":"(\w+)","addr":"([^"]+)"`)

// writeConfig writes a config file into a fresh directory and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wellknownd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startDaemon runs "wellknownd serve -config FILE" and waits until every
// listener in want has logged its address, and for a TLS listener until
// the daemon serves: the listeners accept before the certificates are in
// place, and a handshake in between fails.
func startDaemon(t *testing.T, yaml string, want ...string) *daemon {
	t.Helper()
	path := writeConfig(t, yaml)
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{t: t, configPath: path, addrs: map[string]string{}, stderr: &syncbuf.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- run(ctx, []string{"serve", "-config", path}, io.Discard, d.stderr) }()
	t.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range listeningRE.FindAllStringSubmatch(d.stderr.String(), -1) {
			if m[1] != "" {
				d.addrs[m[1]] = m[2]
			} else {
				d.addrs[m[3]] = m[4]
			}
		}
		missing := false
		for _, w := range want {
			if d.addrs[w] == "" {
				missing = true
			}
		}
		if !missing {
			if slices.Contains(want, "https") || slices.Contains(want, "federation") {
				d.waitLog("msg=serving", 30*time.Second)
			}
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited before listening: %v\n%s", err, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not listen on %v in time:\n%s", want, d.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop cancels the daemon's context (as SIGTERM does) and returns run's error.
func (d *daemon) stop() error {
	d.cancel()
	select {
	case err, ok := <-d.done:
		if ok {
			close(d.done)
			return err
		}
		return nil
	case <-time.After(15 * time.Second):
		d.t.Fatalf("daemon did not stop:\n%s", d.stderr)
	}
	return nil
}

// waitLog waits until the daemon has logged a line containing sub.
func (d *daemon) waitLog(sub string, timeout time.Duration) {
	d.t.Helper()
	if err := wait.For(timeout, func() error {
		if strings.Contains(d.stderr.String(), sub) {
			return nil
		}
		return errors.New("not logged")
	}); err != nil {
		d.t.Fatalf("waiting for %q in the log: %v\n%s", sub, err, d.stderr)
	}
}

// do sends one request to listener with the given Host and headers.
func (d *daemon) do(method, listener, host, path string, hdr ...string) *http.Response {
	d.t.Helper()
	req, err := http.NewRequest(method, "http://"+d.addrs[listener]+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawResponse sends a request over a fresh connection and returns the
// response head exactly as it crossed the wire, minus the Date line.
func rawResponse(t *testing.T, addr, request string) string {
	t.Helper()
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(bufio.NewReader(conn))
	var keep []string
	for _, line := range strings.Split(string(all), "\r\n") {
		if !strings.HasPrefix(line, "Date: ") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
