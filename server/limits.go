package server

import (
	"syscall"
	"time"

	"github.com/wellknownd/wellknownd/config"
)

// limits are config.Limits with the automatic values worked out: what the
// edge enforces. They are fixed for the life of the process.
type limits struct {
	maxConns      int
	upstreamConns int
	upstreamWait  time.Duration
	bodyIdle      time.Duration
	h2Streams     int
	sendTimeout   time.Duration
	// bodyMinRate is in bytes a second; 0 is off.
	bodyMinRate int64
	// staticFiles caps the files static routes hold open at once;
	// staticCache is the bytes they keep in memory.
	staticFiles int
	staticCache int64
	// encoders caps the answers being compressed at once.
	encoders int
	// bufferMemory and bufferDisk bound what bodies and answers held at
	// the edge take (bufferBudget), in bytes; bufferFiles the temporary
	// files they may have open at once, in bufferDir.
	bufferMemory, bufferDisk int64
	bufferFiles              int
	bufferDir                string
}

// reservedFDs are the descriptors kept for what is neither a client's nor
// an upstream connection: the listeners, the admin listener's clients, logs
// and certificate files, supervised processes' pipes, DNS and ACME.
const reservedFDs = 128

// newLimits fills in the automatic limits from the descriptor limit (Go
// raises the soft limit to the hard one at start): client connections, the
// homeserver connections they may each hold and the temporary files of
// their buffers must fit below it with room to spare, or a flood of slow
// clients ends in "too many open files" for everyone, the documents and
// the admin listener included. Files a static route sends are descriptors
// too: a client that stops reading holds one for as long as the send
// timeout, so they have a share of their own.
func newLimits(c config.Limits) limits {
	l := limits{upstreamConns: c.UpstreamConns, upstreamWait: c.UpstreamWait, bodyIdle: c.BodyIdleTimeout,
		h2Streams: c.H2MaxStreams, maxConns: c.MaxConns, sendTimeout: c.SendTimeout,
		bodyMinRate: int64(c.BodyMinRate), staticFiles: c.StaticFiles, staticCache: int64(c.StaticCache),
		encoders: c.CompressEncoders, bufferMemory: int64(c.BufferMemory), bufferDisk: int64(c.BufferDisk),
		bufferDir: c.BufferDir}
	var rl syscall.Rlimit
	avail := 1 << 20
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(avail) {
		avail = int(rl.Cur) - reservedFDs
	}
	// Upstream sockets take at most a quarter of what is left.
	if q := max(avail/4, 8); l.upstreamConns > q {
		l.upstreamConns = q
	}
	if l.staticFiles == 0 {
		l.staticFiles = min(max(avail/16, 16), 1024)
	}
	// Temporary files of buffered bodies and answers, an eighth: each
	// holds a descriptor while it is open. Past it, a body is refused
	// (503) and an answer passed on unbuffered, never "too many open
	// files".
	l.bufferFiles = max(avail/8, 8)
	if l.maxConns == 0 {
		l.maxConns = max(avail-l.upstreamConns-l.staticFiles-l.bufferFiles, 16)
	}
	return l
}
