package server

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// An answer too large for one answer buffer, or of unknown length (a
// stream, a chunked /sync), is spooled: read from the upstream at the
// upstream's speed by a goroutine of its own, into an answer buffer and,
// past it, a temporary file, while the client reads behind it, as fast as
// it likes (nginx's proxy_buffering, with proxy_max_temp_file_size). The
// upstream connection goes back to the pool, and its slot is freed, as
// soon as the upstream has sent the last byte, whatever the client's
// speed; yet nothing waits for the end: each byte is the client's as soon
// as it is in the spool, so a stream or a long-poll's answer reaches it
// when written.
//
// The spool is a ring that starts over whenever the client has caught up
// with the upstream, so that a client that keeps up (most of them, and
// every stream) never touches the disk. When a spool can grow no more (the
// file bound, the disk budget, no descriptor), it waits for its client to
// catch up: the answer is then passed on at the client's speed, holding its
// slot, as an unbuffered one does, under the send timeout.
type answerSpool struct {
	upstream io.ReadCloser
	budget   *bufferBudget
	copies   *bufferPool

	mu   sync.Mutex
	cond sync.Cond
	// mem is the ring's first answerBufferSize bytes, f the rest, of
	// which disk bytes are charged to the budget.
	mem  *[]byte
	f    *os.File
	disk int64
	// r is where the client reads, w where the upstream writes; r <= w.
	r, w int64
	// done: the upstream has ended, with err (nil at its end); closed: the
	// client has; the last of the two gives everything back.
	done, closed bool
	err          error
}

// maxAnswerFile bounds one answer's temporary file, as nginx's
// proxy_max_temp_file_size does (1 GiB by default there too): a client
// that lags behind a download by more than this holds its upstream
// connection until it catches up.
const maxAnswerFile = 1 << 30

// spoolGrowth is how much disk a spool takes from the budget at a time.
const spoolGrowth = 256 << 10

// newAnswerSpool starts reading upstream into a spool whose first part is
// mem, taken from budget.answers, and returns the spool for the client to
// read.
func newAnswerSpool(upstream io.ReadCloser, mem *[]byte, budget *bufferBudget, copies *bufferPool) *answerSpool {
	s := &answerSpool{upstream: upstream, budget: budget, copies: copies, mem: mem}
	s.cond.L = &s.mu
	go s.fill()
	return s
}

// fill reads the upstream to its end, or until the client is gone.
func (s *answerSpool) fill() {
	var scratch []byte
	var err error
	for err == nil {
		dst, fileOff, fileRoom, ok := s.room()
		if !ok {
			break
		}
		if dst == nil {
			// Past the memory, through a buffer of the copy pool into
			// the file.
			if scratch == nil {
				scratch = s.copies.Get()
			}
			dst = scratch[:min(int64(len(scratch)), fileRoom)]
		}
		var n int
		n, err = s.upstream.Read(dst)
		if n > 0 && fileOff >= 0 {
			if _, werr := s.f.WriteAt(dst[:n], fileOff); werr != nil {
				n, err = 0, fmt.Errorf("spooling an answer to limits.buffer_dir: %w", werr)
			}
		}
		s.mu.Lock()
		s.w += int64(n)
		s.cond.Broadcast()
		s.mu.Unlock()
	}
	// At its end, this gives the connection back to the pool and frees
	// the slot; before it (the client left, a file error), it drops it.
	s.upstream.Close()
	if scratch != nil {
		s.copies.Put(scratch)
	}
	if err == io.EOF {
		err = nil
	}
	s.mu.Lock()
	s.done, s.err = true, err
	s.cond.Broadcast()
	last := s.closed
	s.mu.Unlock()
	if last {
		s.free()
	}
}

// room waits until the spool has room and says where the upstream's next
// bytes go: into mem, or (mem nil) fileRoom bytes at fileOff in the file.
// It reports false once the client is gone.
func (s *answerSpool) room() (mem []byte, fileOff, fileRoom int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	memLen := int64(len(*s.mem))
	for !s.closed {
		if s.r == s.w {
			// The client has everything: start over at the front.
			s.r, s.w = 0, 0
		}
		if s.w < memLen {
			return (*s.mem)[s.w:], -1, 0, true
		}
		if off := s.w - memLen; off < s.disk {
			return nil, off, s.disk - off, true
		}
		if !s.growLocked() {
			// Full: wait for the client to read.
			s.cond.Wait()
		}
	}
	return nil, 0, 0, false
}

// growLocked takes more disk for the file, opening it first if need be.
func (s *answerSpool) growLocked() bool {
	step := min(spoolGrowth, maxAnswerFile-s.disk)
	if step <= 0 || !s.budget.disk.take(step) {
		return false
	}
	if s.f == nil {
		f, err := s.budget.tempFile()
		if err != nil {
			s.budget.disk.give(step)
			return false
		}
		s.f = f
	}
	s.disk += step
	return true
}

// Read gives the client what the upstream has sent so far, waiting only
// when it has had all of it.
func (s *answerSpool) Read(p []byte) (int, error) {
	s.mu.Lock()
	for s.r == s.w && !s.done {
		s.cond.Wait()
	}
	if s.r == s.w {
		err := s.err
		s.mu.Unlock()
		if err == nil {
			err = io.EOF
		}
		return 0, err
	}
	off, memLen := s.r, int64(len(*s.mem))
	n := min(int64(len(p)), s.w-off)
	if off < memLen {
		n = int64(copy(p[:min(n, memLen-off)], (*s.mem)[off:]))
		s.r += n
		s.cond.Broadcast()
		s.mu.Unlock()
		return int(n), nil
	}
	s.mu.Unlock()
	// What lies between r and w is written and stays put until r reaches
	// w: the file is read without the lock.
	m, err := s.f.ReadAt(p[:n], off-memLen)
	s.mu.Lock()
	s.r += int64(m)
	s.cond.Broadcast()
	s.mu.Unlock()
	if err == io.EOF && m > 0 {
		err = nil
	}
	return m, err
}

// Close is the client's end: the upstream is dropped if it has not ended
// (a reading fill returns then), and the spool freed once fill is done.
func (s *answerSpool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cond.Broadcast()
	last := s.done
	s.mu.Unlock()
	if last {
		s.free()
	} else {
		s.upstream.Close()
	}
	return nil
}

func (s *answerSpool) free() {
	s.budget.answers.put(s.mem)
	s.mem = nil
	if s.f != nil {
		s.budget.closeTemp(s.f, s.disk)
		s.f = nil
	} else {
		s.budget.disk.give(s.disk)
	}
}
