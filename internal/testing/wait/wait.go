// Package wait is the tests' one wait-until loop: it polls a condition
// until it holds or a deadline passes, and says what was last seen.
package wait

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// Poll is how often conditions are polled.
const Poll = 20 * time.Millisecond

// For calls cond every Poll until it returns nil, and returns nil; after
// timeout it returns cond's last error. It is for helpers that report
// failure themselves (with logs attached, say).
func For(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(Poll)
	}
}

// Until is For that fails t, naming what was waited for.
func Until(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := For(timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// True is Until for a condition that has nothing to say but yes or no.
func True(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	Until(t, what, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

// TCP waits until addr accepts connections.
func TCP(t testing.TB, addr string) {
	t.Helper()
	Until(t, addr+" to accept", 5*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}
