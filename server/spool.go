package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// bufferBudget is what every request body and answer held at the edge
// may take together, at once: memory (limits.buffer_memory), disk in
// temporary files (limits.buffer_disk) and the descriptors those files
// hold (derived from the descriptor limit, see newLimits). A body or an
// answer takes its share before it is read and gives it back when it is
// done, so that no number of clients, however slow, can grow the edge past
// it: they are refused (a body: 503) or passed on unbuffered (an answer)
// instead. One budget serves every upstream of a server, across reloads.
type bufferBudget struct {
	// dir holds the temporary files, limits.buffer_dir.
	dir                 string
	memory, disk, files quota
	// bodies are the memory buffers of request bodies, answers those of
	// answers; both charge memory. smallAnswers hold answers of a known
	// length that fits them: most of the Matrix API's (a /versions, a
	// message send's event ID, an empty incremental /sync) are a few
	// hundred bytes to a few KiB, and a client that does not read holds
	// its answer's buffer as long as its stream lives, so the buffer is
	// sized to the answer, not to the largest one.
	bodies, answers *pooledBuffers
	smallAnswers    [2]*pooledBuffers
}

// Sizes of smallAnswers.
const (
	smallAnswerSize  = 2 << 10
	mediumAnswerSize = 8 << 10
)

// answerPool is the pool whose buffers fit an answer of n bytes, n at most
// answerBufferSize.
func (b *bufferBudget) answerPool(n int64) *pooledBuffers {
	switch {
	case n <= smallAnswerSize:
		return b.smallAnswers[0]
	case n <= mediumAnswerSize:
		return b.smallAnswers[1]
	}
	return b.answers
}

func newBufferBudget(l limits) *bufferBudget {
	b := &bufferBudget{dir: l.bufferDir, memory: quota{limit: l.bufferMemory}, disk: quota{limit: l.bufferDisk},
		files: quota{limit: int64(l.bufferFiles)}}
	b.bodies = newPooledBuffers(bodyBufferSize, &b.memory)
	b.answers = newPooledBuffers(answerBufferSize, &b.memory)
	b.smallAnswers = [2]*pooledBuffers{newPooledBuffers(smallAnswerSize, &b.memory), newPooledBuffers(mediumAnswerSize, &b.memory)}
	return b
}

// quota is a count that must stay within limit.
type quota struct {
	held  atomic.Int64
	limit int64
}

// take adds n if the result stays within the limit, and reports whether
// it did.
func (q *quota) take(n int64) bool {
	if q.held.Add(n) > q.limit {
		q.held.Add(-n)
		return false
	}
	return true
}

func (q *quota) give(n int64) { q.held.Add(-n) }

// pooledBuffers are buffers of one size, recycled, each charged to a
// memory quota while it is out: a small body or answer held at the edge
// costs no allocation.
type pooledBuffers struct {
	size int
	pool sync.Pool
	mem  *quota
}

func newPooledBuffers(size int, mem *quota) *pooledBuffers {
	p := &pooledBuffers{size: size, mem: mem}
	p.pool.New = func() any { b := make([]byte, size); return &b }
	return p
}

// get takes a buffer, or nil when the memory budget is spent.
func (p *pooledBuffers) get() *[]byte {
	if !p.mem.take(int64(p.size)) {
		return nil
	}
	return p.pool.Get().(*[]byte)
}

func (p *pooledBuffers) put(b *[]byte) {
	p.pool.Put(b)
	p.mem.give(int64(p.size))
}

// errNoBufferSpace is what a body or an answer meets when the budget has
// no more room for it, or the disk none (a temporary file that cannot be
// made or written: the edge's trouble, never the client's).
var errNoBufferSpace = errors.New("the buffers' budget is spent")

// tempFile opens a temporary file in the budget's directory, taking one of
// its descriptors. The file has no name from the start (or loses it at
// once where O_TMPFILE is not supported): a crash, or a client that goes
// away mid-body, can leave nothing behind on disk; closing it is the whole
// clean-up. Its disk is taken separately, as it grows.
func (b *bufferBudget) tempFile() (*os.File, error) {
	if !b.files.take(1) {
		return nil, errNoBufferSpace
	}
	f, err := openUnlinked(b.dir)
	if errors.Is(err, fs.ErrNotExist) {
		// Created at start; made again if something (a tmp cleaner) took
		// it away since.
		if err = os.MkdirAll(b.dir, 0o700); err == nil {
			f, err = openUnlinked(b.dir)
		}
	}
	if err != nil {
		b.files.give(1)
		return nil, fmt.Errorf("%w: a temporary file in limits.buffer_dir %s: %w", errNoBufferSpace, b.dir, err)
	}
	return f, nil
}

// closeTemp closes a file of tempFile and gives back its descriptor and
// the disk it was charged.
func (b *bufferBudget) closeTemp(f *os.File, disk int64) {
	f.Close()
	b.files.give(1)
	b.disk.give(disk)
}

func openUnlinked(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	// A file system without O_TMPFILE (EOPNOTSUPP, EISDIR on old
	// kernels): a named file, unlinked before anything is written.
	f, err = os.CreateTemp(dir, "wellknownd-buffer-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// prepareBufferDir creates limits.buffer_dir, readable by this user only
// (bodies and answers are private), when the server starts.
func prepareBufferDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("limits.buffer_dir %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("limits.buffer_dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("limits.buffer_dir %s is not a directory", dir)
	}
	// Probe it once, so that a directory that cannot hold files is an
	// error at start, not a 503 on the first upload.
	f, err := openUnlinked(dir)
	if err != nil {
		return fmt.Errorf("limits.buffer_dir %s cannot hold temporary files: %w", dir, err)
	}
	return f.Close()
}
