package server

import (
	"net/http"
	"sync"
	"time"
)

// writeDeadliner is an HTTP/2 or HTTP/3 stream's response writer: its
// write deadline ends that stream alone.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// stallWatch ends an HTTP/2 or HTTP/3 stream whose writes make no progress
// for the send timeout. Those protocols multiplex streams on one
// connection, each with a flow-control window of its own: a client can
// keep one stream's window at zero while the connection as a whole keeps
// moving, so the socket's bound (limitedConn.Write) never fires, and the
// handler's write would wait for ever, holding its upstream connection.
//
// A timer runs only while a write or a flush is under way: armed when it
// starts, stopped when it returns. So a stream that is not writing (a
// long-poll waiting for its answer) is never cut, and one that keeps
// moving never is either. When it fires, the stream's write deadline is
// put in the past, which fails the blocked write and resets the stream.
type stallWatch struct {
	stream  writeDeadliner
	timeout time.Duration
	timer   *time.Timer
	// mu makes expire and stop exclusive: once the request has ended, its
	// writer belongs to the server again (net/http recycles an HTTP/2
	// stream's state, and a deadline then would reset another stream or
	// find none), so a timer that fired as the last write returned must
	// not touch it.
	mu    sync.Mutex
	ended bool
}

// newStallWatch returns a watch for w, or nil when the request is not on
// a multiplexed protocol (HTTP/1 is bounded per socket write) or w cannot
// take a deadline.
func newStallWatch(w http.ResponseWriter, r *http.Request, timeout time.Duration) *stallWatch {
	if r.ProtoMajor < 2 || timeout <= 0 {
		return nil
	}
	d, ok := w.(writeDeadliner)
	if !ok {
		return nil
	}
	return &stallWatch{stream: d, timeout: timeout}
}

func (s *stallWatch) arm() {
	if s.timer == nil {
		s.timer = time.AfterFunc(s.timeout, s.expire)
		return
	}
	s.timer.Reset(s.timeout)
}

func (s *stallWatch) disarm() { s.timer.Stop() }

// expire runs on the timer's goroutine, while the handler's goroutine is
// blocked in a write: both stream writers take a deadline from any
// goroutine.
func (s *stallWatch) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.stream.SetWriteDeadline(time.Unix(1, 0))
	}
}

// stop ends the watch with its request, before the handler returns: no
// deadline is set after it.
func (s *stallWatch) stop() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
}
