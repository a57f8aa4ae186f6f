package main

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/wellknownd/wellknownd/internal/acmetest"
)

// TestMain points every name lookup of this test binary that is not
// answered by /etc/hosts at a DNS server on loopback that knows no name:
// the tests' example.com and friends must never be looked up elsewhere.
// It is done before any test starts, so nothing races with the change.
func TestMain(m *testing.M) {
	addr, stop, err := acmetest.StartNXDomain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test DNS server:", err)
		os.Exit(1)
	}
	net.DefaultResolver = acmetest.Resolver(addr)
	code := m.Run()
	stop()
	os.Exit(code)
}
