package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// bodyBufferSize is the most of a request body held in memory; a larger
// one goes to a temporary file. nginx's client_body_buffer_size is 8 or 16
// KiB, sized for web forms; here it is sized for the Matrix API: an event
// is at most 65536 bytes (the spec's PDU size limit), so every message,
// state event and nearly every other JSON body of a client or a server
// stays in memory, and only media uploads and the rare huge batch (a
// /keys/upload or /sendToDevice to many devices) touch the disk.
const bodyBufferSize = 64 << 10

// bufferedBody is a request body read whole at the edge, in memory or in a
// temporary file, before the upstream is dialled: however slowly the
// client sends it, the homeserver receives it at once, from here (nginx's
// proxy_request_buffering). It is the body of the request forwarded; its
// memory, file and budget are given back as soon as the upstream has read
// it to the end, or when the request ends.
type bufferedBody struct {
	budget *bufferBudget
	// mu: the transport reads in a goroutine of its own, which may still
	// be reading when the handler returns (the upstream answered before it
	// took the whole body) and releases the body.
	mu sync.Mutex
	// mem holds the body (data is its first size bytes) while it is in
	// memory; f once it is on disk, and disk is what f is charged.
	mem  *[]byte
	data []byte
	f    *os.File
	disk int64
	// size is the body's length; off how much of it has been read.
	size, off int64
	released  bool
}

// newBufferedBody takes the budget a body of length (-1: not known, a
// chunked one) starts with: the whole of a declared length, in memory if
// it fits a body buffer, else on disk, so that a declared body that has
// room is never refused halfway; an undeclared one starts in memory and
// takes disk as it grows. It fails with errNoBufferSpace.
func newBufferedBody(budget *bufferBudget, length int64) (*bufferedBody, error) {
	b := &bufferedBody{budget: budget}
	if length <= bodyBufferSize {
		if b.mem = budget.bodies.get(); b.mem != nil {
			return b, nil
		}
		if length < 0 {
			// No memory: on disk from the first byte, as it grows.
			if err := b.spill(); err != nil {
				return nil, err
			}
			return b, nil
		}
	}
	if !budget.disk.take(length) {
		return nil, errNoBufferSpace
	}
	b.disk = length
	if err := b.spill(); err != nil {
		budget.disk.give(length)
		return nil, err
	}
	return b, nil
}

// spill moves the body to a temporary file, with what it holds in memory
// so far.
func (b *bufferedBody) spill() error {
	f, err := b.budget.tempFile()
	if err != nil {
		return err
	}
	b.f = f
	if b.mem != nil {
		if err := b.grow(b.size); err != nil {
			return err
		}
		if _, err := f.Write(b.data); err != nil {
			return fmt.Errorf("%w: writing a request body to limits.buffer_dir: %w", errNoBufferSpace, err)
		}
		b.budget.bodies.put(b.mem)
		b.mem, b.data = nil, nil
	}
	return nil
}

// grow makes sure the file is charged for size bytes.
func (b *bufferedBody) grow(size int64) error {
	if size <= b.disk {
		return nil
	}
	// Taken a buffer's worth ahead, not per read.
	want := max(size, b.disk+bodyBufferSize)
	if !b.budget.disk.take(want - b.disk) {
		if size == want || !b.budget.disk.take(size-b.disk) {
			return errNoBufferSpace
		}
		want = size
	}
	b.disk = want
	return nil
}

// fill reads the client's body r to its end. copyBuf is a scratch buffer
// for what goes to the file. The errors are the client's (from r: a
// stall, a cut, a body over max_body) or errNoBufferSpace, or a file's.
func (b *bufferedBody) fill(r io.Reader, copyBuf []byte) error {
	for b.f == nil {
		var n int
		var err error
		if b.size < int64(len(*b.mem)) {
			n, err = r.Read((*b.mem)[b.size:])
			b.size += int64(n)
			b.data = (*b.mem)[:b.size]
		} else {
			// The memory is full: a body that has more goes to disk.
			n, err = r.Read(copyBuf)
			if n > 0 {
				if serr := b.spill(); serr != nil {
					return serr
				}
				if werr := b.write(copyBuf[:n]); werr != nil {
					return werr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	for {
		n, err := r.Read(copyBuf)
		if n > 0 {
			if werr := b.write(copyBuf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// write appends p to the file, within the disk budget.
func (b *bufferedBody) write(p []byte) error {
	if err := b.grow(b.size + int64(len(p))); err != nil {
		return err
	}
	if _, err := b.f.Write(p); err != nil {
		return fmt.Errorf("%w: writing a request body to limits.buffer_dir: %w", errNoBufferSpace, err)
	}
	b.size += int64(len(p))
	return nil
}

// Read gives the body to the transport. At its end the buffer is given
// back at once: the request may wait long for its answer, and the body is
// not needed for it.
func (b *bufferedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released || b.off >= b.size {
		b.releaseLocked()
		return 0, io.EOF
	}
	var n int
	var err error
	if b.f == nil {
		n = copy(p, b.data[b.off:])
	} else {
		n, err = b.f.ReadAt(p[:min(int64(len(p)), b.size-b.off)], b.off)
		if errors.Is(err, io.EOF) && n > 0 {
			err = nil
		}
	}
	b.off += int64(n)
	return n, err
}

// Close is the transport's, which ReverseProxy keeps from reaching here;
// release ends the body.
func (b *bufferedBody) Close() error { return nil }

// release gives back the body's memory, file and budget; reads after it
// find the end of the body.
func (b *bufferedBody) release() {
	b.mu.Lock()
	b.releaseLocked()
	b.mu.Unlock()
}

func (b *bufferedBody) releaseLocked() {
	if b.released {
		return
	}
	b.released = true
	if b.mem != nil {
		b.budget.bodies.put(b.mem)
		b.mem, b.data = nil, nil
	}
	if b.f != nil {
		b.budget.closeTemp(b.f, b.disk)
		b.f = nil
	} else {
		b.budget.disk.give(b.disk)
	}
	b.disk = 0
}
