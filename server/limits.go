package server

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wellknownd/wellknownd/server/config"
)

// limits are config.Limits with the automatic values worked out: what the
// edge enforces. They are fixed for the life of the process.
type limits struct {
	maxConns      int
	upstreamConns int
	upstreamWait  time.Duration
	bodyIdle      time.Duration
	h2Streams     int
}

// reservedFDs are the descriptors kept for what is neither a client's nor
// an upstream connection: the listeners, the admin listener's clients, logs
// and certificate files, supervised processes' pipes, DNS and ACME.
const reservedFDs = 128

// newLimits fills in the automatic limits from the descriptor limit (Go
// raises the soft limit to the hard one at start): client connections and
// the homeserver connections they may each hold must fit below it with room
// to spare, or a flood of slow clients ends in "too many open files" for
// everyone, the documents and the admin listener included.
func newLimits(c config.Limits) limits {
	l := limits{upstreamConns: c.UpstreamConns, upstreamWait: c.UpstreamWait.D(), bodyIdle: c.BodyIdleTimeout.D(),
		h2Streams: c.H2MaxStreams, maxConns: c.MaxConns}
	var rl syscall.Rlimit
	avail := 1 << 20
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(avail) {
		avail = int(rl.Cur) - reservedFDs
	}
	// Upstream sockets take at most a quarter of what is left.
	if q := max(avail/4, 8); l.upstreamConns > q {
		l.upstreamConns = q
	}
	if l.maxConns == 0 {
		l.maxConns = max(avail-l.upstreamConns, 16)
	}
	return l
}

// connLimiter caps the connections open at once across the public
// listeners. Past the cap, Accept waits for a connection to close: new
// clients wait in the kernel's accept queue instead of costing descriptors.
type connLimiter struct {
	slots chan struct{}
	// reached counts the times a connection had to wait for a slot.
	reached atomic.Uint64
}

func newConnLimiter(n int) *connLimiter { return &connLimiter{slots: make(chan struct{}, n)} }

// open is the number of connections held now; full says it is the cap.
func (c *connLimiter) open() int  { return len(c.slots) }
func (c *connLimiter) full() bool { return len(c.slots) == cap(c.slots) }

func (c *connLimiter) wrap(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, c: c, closed: make(chan struct{})}
}

type limitedListener struct {
	net.Listener
	c         *connLimiter
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *limitedListener) Accept() (net.Conn, error) {
	select {
	case l.c.slots <- struct{}{}:
	default:
		l.c.reached.Add(1)
		select {
		case l.c.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		<-l.c.slots
		return nil, err
	}
	return &limitedConn{Conn: conn, release: func() { <-l.c.slots }}, nil
}

func (l *limitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn gives its slot back once, when it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

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
