package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// clientBody is a request body read on the client's behalf, into the
// edge's buffer (bufferedBody).
//
// Each Read pushes the connection's read deadline idle into the future: an
// upload that keeps moving is never cut, however long it takes, and one
// that stalls for idle is (nginx's client_body_timeout). At the end of the
// body the deadline is lifted again, so that a long answer to a short POST
// is not cut either.
type clientBody struct {
	io.Reader
	ctl  *http.ResponseController
	idle time.Duration
	// minRate (bytes a second, 0 for none) is what the body must average
	// once it has been arriving for idle, since its first byte (start):
	// see errBodyTooSlow.
	minRate int64
	start   time.Time
	read    int64
}

func (b *clientBody) Read(p []byte) (int, error) {
	b.ctl.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.Reader.Read(p)
	b.read += int64(n)
	if err == nil && b.minRate > 0 && !b.start.IsZero() {
		if took := time.Since(b.start); took > b.idle && b.read < int64(took.Seconds()*float64(b.minRate)) {
			err = errBodyTooSlow
		}
	}
	if err == io.EOF {
		b.ctl.SetReadDeadline(time.Time{})
	}
	return n, err
}

// startBody waits for the first byte of r's body, under the idle bound: a
// client that sends headers and then nothing holds only its own
// connection until the bound ends it. It returns the body to read, the
// first byte included, or answers the client itself and returns nil when
// the body does not start.
func startBody(w http.ResponseWriter, r *http.Request, idle time.Duration, minRate int64) io.Reader {
	b := &clientBody{Reader: r.Body, ctl: http.NewResponseController(w), idle: idle, minRate: minRate}
	var first [1]byte
	if r.ProtoMajor == 1 {
		// Until the body starts, the connection only waits: the first to
		// go when the connection cap is reached.
		markWaiting(r.Context(), true)
	}
	n, err := b.Read(first[:])
	if r.ProtoMajor == 1 {
		markWaiting(r.Context(), false)
	}
	if err != nil && err != io.EOF {
		writeBodyError(w, r, err)
		return nil
	}
	// The rate is measured from the first byte: how long a body took to
	// start is the idle bound's business.
	b.start = time.Now()
	if err == io.EOF {
		return bytes.NewReader(first[:n])
	}
	return io.MultiReader(bytes.NewReader(first[:n]), b)
}

// errBodyTooSlow ends a body that, once it has been arriving for the idle
// bound, averages less than limits.body_min_rate: a trickle (a byte every
// minute) that keeps resetting the idle timer, which would otherwise hold
// its buffer and its connection for as long as the client likes. It is a
// stall, and answered as one (408).
var errBodyTooSlow = fmt.Errorf("the request body arrives below limits.body_min_rate: %w", os.ErrDeadlineExceeded)

// writeBodyError answers a request whose body could not be read: 408 when
// it stalled, 400 for anything else (a malformed chunk, a connection cut
// mid-body). A body over max_body is the gate's 413, decided before this.
func writeBodyError(w http.ResponseWriter, r *http.Request, err error) {
	// The connection is in an unknown state mid-body: it is not reused.
	closeAfter(w, r)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		writeMatrixError(w, corsClientAPI, http.StatusRequestTimeout, codeUnknown, "The request body stopped arriving")
		return
	}
	writeMatrixError(w, corsClientAPI, http.StatusBadRequest, codeUnknown, "The request body could not be read")
}

// closeAfter asks that an HTTP/1 connection be closed after this answer.
// HTTP/2 and HTTP/3 end the stream alone, and a Connection header there
// makes the answer malformed (RFC 9113, section 8.2.2; RFC 9114, section
// 4.2): a client would see a protocol error instead of the status.
func closeAfter(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
}

// The bounds of the drain after a 413: nginx's lingering_time and
// lingering_timeout, and a byte count so that no one can keep a
// connection busy by sending for ever.
const (
	drainTime  = 30 * time.Second
	drainIdle  = 5 * time.Second
	drainBytes = 1 << 30
)

// refuseTooLarge answers 413 to a body whose declared length is over the
// cap, before reading any of it.
func refuseTooLarge(w http.ResponseWriter, r *http.Request, buffers *bufferPool) {
	refuseBody(w, r, buffers, false, http.StatusRequestEntityTooLarge, codeTooLarge, "Request body too large")
}

// refuseBody answers a request whose body the edge will not take, then
// reads and discards the body for a bounded while, as nginx's lingering
// close does. A client that sends its whole body before reading the
// answer (a browser's fetch, Python's urllib: anything without "Expect:
// 100-continue") then reads the answer, instead of a connection reset that
// reads as a network error. A client that asked for 100 Continue and was
// not sent one (started: no byte of the body was read) sends no body:
// nothing to drain.
func refuseBody(w http.ResponseWriter, r *http.Request, buffers *bufferPool, started bool, status int, errcode, msg string) {
	closeAfter(w, r)
	if !started && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		writeMatrixError(w, corsClientAPI, status, errcode, msg)
		return
	}
	ctl := http.NewResponseController(w)
	ctl.EnableFullDuplex() // HTTP/1: keep the body readable after the answer
	writeMatrixError(w, corsClientAPI, status, errcode, msg)
	ctl.Flush()
	buf := buffers.Get()
	defer buffers.Put(buf)
	end := time.Now().Add(drainTime)
	for n := 0; n < drainBytes; {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		ctl.SetReadDeadline(now.Add(min(drainIdle, end.Sub(now))))
		m, err := r.Body.Read(buf)
		n += m
		if err != nil {
			return
		}
	}
}

// boundLeftoverBody bounds what net/http does with a request body the
// handler did not read to the end (a redirect, a 404, an answer before the
// upload finished): it reads up to 256 KiB more to keep the connection,
// with no deadline at all, so a client that sends headers and then
// nothing would hold the connection for ever. With this, it waits at most
// drainIdle; the next request's header timeout replaces the deadline.
func boundLeftoverBody(w http.ResponseWriter) {
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainIdle))
}
