package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"
)

// h1Transport sends a request without a body to a plain-HTTP upstream
// from the goroutine that asks, over a keep-alive connection of its own
// pool, and hands every other request to next (http.Transport).
//
// Why: http.Transport runs two goroutines per connection (one reads, one
// writes) and keeps a read and a write buffer with it, all the time the
// connection is open. A held /sync long-poll holds a connection for up to
// its timeout, and a few thousand idle clients hold a few thousand: the
// two goroutines' stacks and the buffers were a third of what each cost
// the edge. Here a request waiting for its answer holds the connection and
// nothing else: the request is written through a pooled buffer, the wait
// for the answer's first byte uses none (the kernel is asked whether the
// socket is readable), and a read buffer is taken from a pool only when
// the answer is there, and given back with the connection.
//
// The requests without a body are most of the client API and all its
// long-polls. A request with a body stays with http.Transport, which
// writes the body while it reads the answer: an upstream may answer (a
// 413, a 401) before it has read the body, and stop reading. So do an
// upgrade (a WebSocket), whose connection leaves the pool, and an https://
// upstream.
type h1Transport struct {
	next   *http.Transport
	dialer *net.Dialer

	mu sync.Mutex
	// idle are the connections waiting for a request, by host:port,
	// oldest first; nidle counts them all.
	idle  map[string][]*h1Conn
	nidle int
	// sweep closes the connections idle for longer than h1IdleTimeout;
	// armed while it is scheduled.
	sweep *time.Timer
	armed bool
}

// The pool's bounds are http.Transport's as newTransport sets them.
const (
	h1MaxIdle        = 1024
	h1MaxIdlePerHost = 512
	h1IdleTimeout    = 90 * time.Second
	// h1MaxHeaderBytes bounds an answer's status line and headers: an
	// upstream that sends headers without end is cut off, not buffered.
	h1MaxHeaderBytes = 1 << 20
	// h1Max1xx bounds the interim answers (100, 103) read before the
	// final one, as http.Transport does.
	h1Max1xx = 5
)

func newH1Transport(next *http.Transport) *h1Transport {
	return &h1Transport{next: next, dialer: &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		idle: map[string][]*h1Conn{}}
}

// h1Conn is one connection of the pool.
type h1Conn struct {
	net.Conn
	key  string
	idle time.Time
	// lr limits what an answer's headers may take of the connection.
	lr headerLimitReader
	// raw is the socket, for looking at it without reading (peek);
	// peekFn and waitFn are the callbacks, made once per connection.
	raw            syscall.RawConn
	peekFn, waitFn func(fd uintptr) bool
	peekErr        error
	peekBuf        [1]byte
}

// headerLimitReader reads from the connection; while n > 0 it counts down,
// and fails once n bytes have been read (the headers' bound).
type headerLimitReader struct {
	c net.Conn
	n int64
}

var errH1HeadersTooLarge = fmt.Errorf("upstream answer's headers exceed %d bytes", h1MaxHeaderBytes)

func (r *headerLimitReader) Read(p []byte) (int, error) {
	if r.n < 0 {
		return r.c.Read(p)
	}
	if r.n == 0 {
		return 0, errH1HeadersTooLarge
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.c.Read(p)
	r.n -= int64(n)
	return n, err
}

var (
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, upstreamReadBuffer) }}
)

// putReader gives br back to the pool, holding nothing of its connection.
func putReader(br *bufio.Reader) {
	br.Reset(nil)
	h1Readers.Put(br)
}

// errH1NothingRead marks an exchange that failed before a byte of the
// answer came back. On a connection that had served before (RoundTrip
// knows), that is the upstream closing it while idle (its keep-alive
// timeout) as the request arrived, so a replayable request may be sent
// again on a new one.
type errH1NothingRead struct{ err error }

func (e errH1NothingRead) Error() string { return e.err.Error() }
func (e errH1NothingRead) Unwrap() error { return e.err }

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || (req.Body != nil && req.Body != http.NoBody) || req.Header.Get("Upgrade") != "" {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	key := hostPort(req.URL.Host)
	for attempt := 0; ; attempt++ {
		c, reused, err := t.conn(ctx, key)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req)
		if err == nil {
			return resp, nil
		}
		var nothing errH1NothingRead
		if attempt == 0 && reused && errors.As(err, &nothing) && ctx.Err() == nil && replayable(req) {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
}

// replayable: sending the request twice does what sending it once does
// (http.Transport's rule).
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// hostPort is the address to dial for the URL host h.
func hostPort(h string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return net.JoinHostPort(h, "80")
}

// conn takes an idle connection to key that the upstream has not closed,
// or dials one.
func (t *h1Transport) conn(ctx context.Context, key string) (*h1Conn, bool, error) {
	for {
		c := t.takeIdle(key)
		if c == nil {
			break
		}
		if c.idleAndOpen() {
			return c, true, nil
		}
		// Closed by the upstream while idle, or (a protocol error)
		// sending bytes no request asked for.
		c.Close()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", key)
	if err != nil {
		return nil, false, err
	}
	c := &h1Conn{Conn: nc, key: key}
	c.lr.c = nc
	if sc, ok := nc.(syscall.Conn); ok {
		if c.raw, err = sc.SyscallConn(); err != nil {
			nc.Close()
			return nil, false, err
		}
		c.peekFn, c.waitFn = c.peek, c.wait
	}
	return c, false, nil
}

// exchange writes req on c and reads the answer's headers. The answer's
// body keeps c until it has been read or closed.
func (t *h1Transport) exchange(ctx context.Context, c *h1Conn, req *http.Request) (*http.Response, error) {
	// The client leaving (or the request's deadline) unblocks whatever
	// this or the body is waiting for on c.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.Close()
		return nil, err
	}
	bw := h1Writers.Get().(*bufio.Writer)
	bw.Reset(c)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	h1Writers.Put(bw)
	if err != nil {
		return fail(errH1NothingRead{err})
	}
	// Wait for the answer holding no buffer: a long-poll waits here.
	if err := c.awaitReadable(); err != nil {
		return fail(errH1NothingRead{err})
	}
	br := h1Readers.Get().(*bufio.Reader)
	c.lr.n = h1MaxHeaderBytes
	br.Reset(&c.lr)
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			if i == 0 && c.lr.n == h1MaxHeaderBytes {
				// Not a byte of an answer: the upstream closed (or
				// reset) the connection before reading the request.
				err = errH1NothingRead{err}
			}
			putReader(br)
			return fail(err)
		}
		code := resp.StatusCode
		if code >= 200 {
			break
		}
		if code == http.StatusSwitchingProtocols || i == h1Max1xx {
			putReader(br)
			return fail(fmt.Errorf("upstream answered %d to a request that did not ask for it", code))
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				putReader(br)
				return fail(err)
			}
		}
		c.lr.n = h1MaxHeaderBytes
	}
	c.lr.n = -1
	b := &h1Body{t: t, c: c, br: br, body: resp.Body, stop: stop, ctx: ctx, keep: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		// A HEAD's, a 204's or a 304's answer: the connection is free now.
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// aLongTimeAgo is a deadline that has passed: setting it unblocks a read
// or a write at once.
var aLongTimeAgo = time.Unix(1, 0)

// h1Body is an answer's body; it gives its connection back to the pool at
// its end, or closes it if closed before. Close may come from another
// goroutine while Read runs (a spool's client leaving): it then only
// closes the connection, which ends the Read, and never touches the read
// buffer the Read may be using.
type h1Body struct {
	t    *h1Transport
	c    *h1Conn
	br   *bufio.Reader
	body io.ReadCloser
	stop func() bool
	ctx  context.Context
	keep bool

	mu   sync.Mutex
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return nil
	}
	b.done = true
	b.mu.Unlock()
	b.stop()
	b.c.Close()
	return nil
}

// finish ends the exchange from the reading side: eof when the answer was
// read to its end.
func (b *h1Body) finish(eof bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	// stop is false when the client's leaving already set the deadline.
	keep := b.stop() && eof && b.keep && b.br.Buffered() == 0
	putReader(b.br)
	if keep {
		b.t.putIdle(b.c)
	} else {
		b.c.Close()
	}
}

func (t *h1Transport) takeIdle(key string) *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[key]
	if len(list) == 0 {
		return nil
	}
	// The newest: the one least likely to have been closed meanwhile.
	c := list[len(list)-1]
	list[len(list)-1] = nil
	t.idle[key] = list[:len(list)-1]
	t.nidle--
	return c
}

func (t *h1Transport) putIdle(c *h1Conn) {
	c.idle = time.Now()
	t.mu.Lock()
	list := t.idle[c.key]
	if len(list) >= h1MaxIdlePerHost || t.nidle >= h1MaxIdle {
		t.mu.Unlock()
		c.Close()
		return
	}
	t.idle[c.key] = append(list, c)
	t.nidle++
	if !t.armed {
		t.armed = true
		if t.sweep == nil {
			t.sweep = time.AfterFunc(h1IdleTimeout, t.closeExpired)
		} else {
			t.sweep.Reset(h1IdleTimeout)
		}
	}
	t.mu.Unlock()
}

// closeExpired closes the connections idle for h1IdleTimeout, and
// schedules itself for the oldest of the others.
func (t *h1Transport) closeExpired() {
	now := time.Now()
	var expired []*h1Conn
	t.mu.Lock()
	var next time.Duration
	for key, list := range t.idle {
		// Each list is oldest first: connections are added at its end
		// and taken from it.
		i := 0
		for i < len(list) && now.Sub(list[i].idle) >= h1IdleTimeout {
			i++
		}
		expired = append(expired, list[:i]...)
		rest := copy(list, list[i:])
		clear(list[rest:])
		list = list[:rest]
		t.nidle -= i
		if len(list) == 0 {
			delete(t.idle, key)
			continue
		}
		if d := h1IdleTimeout - now.Sub(list[0].idle); next == 0 || d < next {
			next = d
		}
		t.idle[key] = list
	}
	t.armed = next > 0
	if t.armed {
		t.sweep.Reset(next)
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.Close()
	}
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	var all []*h1Conn
	for key, list := range t.idle {
		all = append(all, list...)
		delete(t.idle, key)
	}
	t.nidle = 0
	t.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
	t.next.CloseIdleConnections()
}

// idleAndOpen looks whether the upstream closed c (or, a protocol error,
// sent bytes no request asked for) while it was idle, without reading and
// without waiting: one recv(MSG_PEEK|MSG_DONTWAIT). http.Transport knows
// it from the goroutine it keeps reading each idle connection.
func (c *h1Conn) idleAndOpen() bool {
	if c.raw == nil {
		return true
	}
	c.peekErr = nil
	if err := c.raw.Read(c.peekFn); err != nil {
		return false
	}
	return c.peekErr == syscall.EAGAIN || c.peekErr == syscall.EWOULDBLOCK
}

func (c *h1Conn) peek(fd uintptr) bool {
	_, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true
}

// awaitReadable waits until c has something to read (or is closed, or its
// deadline passes), holding no buffer meanwhile.
func (c *h1Conn) awaitReadable() error {
	if c.raw == nil {
		return nil
	}
	return c.raw.Read(c.waitFn)
}

func (c *h1Conn) wait(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// false: wait for the socket to become readable, then look again.
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR
}
