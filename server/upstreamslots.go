package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// upstreamSlots caps the requests in flight to each upstream host, which
// is the number of connections to it (one request, one HTTP/1.1
// connection). A request that finds none free waits a while, then is
// answered 503: a flood of slow requests cannot take every socket to the
// homeserver and hold the rest of the clients' requests forever.
type upstreamSlots struct {
	mu   sync.Mutex
	size int
	wait time.Duration
	m    map[string]chan struct{}
}

func (u *upstreamSlots) forHost(host string) chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]chan struct{}{}
	}
	c, ok := u.m[host]
	if !ok {
		c = make(chan struct{}, u.size)
		u.m[host] = c
	}
	return c
}

// inUse is the slots taken now, by host.
func (u *upstreamSlots) inUse() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := make(map[string]int, len(u.m))
	for h, c := range u.m {
		m[h] = len(c)
	}
	return m
}

// acquire takes a slot of c, waiting up to wait, or until done; it
// reports whether it got one.
func acquire(c chan struct{}, wait time.Duration, done <-chan struct{}) bool {
	select {
	case c <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case c <- struct{}{}:
		return true
	case <-t.C:
	case <-done:
	}
	return false
}

// errUpstreamBusy is the error of a request that found no slot free in
// time; the proxy answers it 503 with Retry-After.
var errUpstreamBusy = errors.New("no upstream connection free")

// slotTransport holds one of an upstream's slots for as long as a request
// keeps an upstream connection busy: from before it is dialled until its
// answer has been read to the end — at the upstream's speed, not the
// client's, wherever that can be had:
//   - an answer whose length is known and fits an answer buffer is read
//     whole at once, the upstream connection goes back to the pool and
//     the slot is freed before the client is sent a byte;
//   - any other answer (a stream, a media download, a chunked /sync) is
//     spooled (answerSpool): read on as fast as the upstream sends it,
//     into an answer buffer and a temporary file, with the client reading
//     behind;
//   - without an answer buffer (the memory budget spent), or past what a
//     spool may hold, an answer is passed on at the client's speed and
//     holds its slot until it ends, which the send timeout bounds when
//     the client stops reading.
//
// A client that reads slowly, or not at all, then holds only its own
// connection and its share of the buffers' budget.
type slotTransport struct {
	next   http.RoundTripper
	slots  chan struct{}
	wait   time.Duration
	budget *bufferBudget
	// copies lend a spool its buffer to the file.
	copies *bufferPool
}

// answerBufferSize is an answer buffer's: sized for the Matrix API's JSON
// answers (a /versions, a message send, an incremental /sync), which are
// read whole into one, and the memory part of a spool.
const answerBufferSize = 32 << 10

func (t *slotTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !acquire(t.slots, t.wait, req.Context().Done()) {
		if err := req.Context().Err(); err != nil {
			return nil, err
		}
		return nil, errUpstreamBusy
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		<-t.slots
		return nil, err
	}
	if resp.ContentLength == 0 || req.Method == http.MethodHead || resp.StatusCode == http.StatusSwitchingProtocols {
		// Nothing more to read (a HEAD answer states the length of a body
		// it does not have); an upgraded connection is no longer one of
		// the pool's, and the client connection cap bounds it.
		<-t.slots
		return resp, nil
	}
	if n := resp.ContentLength; n > 0 && n <= answerBufferSize {
		pool := t.budget.answerPool(n)
		bp := pool.get()
		if bp == nil {
			resp.Body = &slotBody{ReadCloser: resp.Body, slots: t.slots}
			return resp, nil
		}
		buf := (*bp)[:n]
		_, err := io.ReadFull(resp.Body, buf)
		resp.Body.Close()
		<-t.slots
		if err != nil {
			pool.put(bp)
			return nil, err
		}
		a := &bufferedAnswer{buf: bp, answers: pool}
		a.Reset(buf)
		resp.Body = a
		return resp, nil
	}
	bp := t.budget.answers.get()
	if bp == nil {
		resp.Body = &slotBody{ReadCloser: resp.Body, slots: t.slots}
		return resp, nil
	}
	resp.Body = newAnswerSpool(&slotBody{ReadCloser: resp.Body, slots: t.slots}, bp, t.budget, t.copies)
	return resp, nil
}

// bufferedAnswer is an answer read whole from the upstream, held until the
// client has taken it.
type bufferedAnswer struct {
	bytes.Reader
	buf     *[]byte
	answers *pooledBuffers
}

func (a *bufferedAnswer) Close() error {
	if a.buf != nil {
		a.answers.put(a.buf)
		a.buf = nil
	}
	return nil
}

// slotBody frees its slot once, when the answer has been read to its end
// or closed (the client left, or the copy failed).
type slotBody struct {
	io.ReadCloser
	slots chan struct{}
	once  sync.Once
}

func (b *slotBody) release() { <-b.slots }

func (b *slotBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.release)
	}
	return n, err
}

func (b *slotBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
