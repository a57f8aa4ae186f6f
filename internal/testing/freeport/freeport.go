// Package freeport picks loopback ports for tests that must name a port
// before whatever listens on it starts: a CA told where to validate, a
// config file written ahead of the daemon.
//
// Listening on ":0" and closing is not enough: the kernel hands that very
// port to the next ":0" listener of any test running in parallel (go test
// runs packages as concurrent processes), which then answers in our
// place. The ports here come from below the kernel's ephemeral range, which
// ":0" never uses, and are never handed out twice by one process.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// lowest is where the picked ports start; below it live well-known and
// registered services a developer may run.
const lowest = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Port returns a loopback TCP port that nothing listens on now.
func Port(t testing.TB) int {
	t.Helper()
	hi := ephemeralLow()
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		p := lowest + rand.IntN(hi-lowest)
		if given[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		given[p] = true
		return p
	}
	t.Fatalf("freeport: no free loopback port in %d-%d", lowest, hi-1)
	return 0
}

// Addr returns "127.0.0.1:PORT" for a Port.
func Addr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(Port(t))
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// default 32768).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lowest+1000 {
				return n
			}
		}
	}
	return 32768
}
