package server

import (
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
