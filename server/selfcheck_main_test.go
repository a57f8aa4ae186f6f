package server

import (
	"os"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
)

// TestMain keeps every name lookup of this package's tests on this
// machine: the self-check of an edge whose listeners have fixed ports
// looks its names up as the world does (A, AAAA, SRV), and must get
// NXDOMAIN at once here, not ask the machine's resolver.
func TestMain(m *testing.M) { os.Exit(isolatedState(func() int { return dnstest.RunIsolated(m) })) }

// isolatedState runs the tests with XDG_DATA_HOME in a directory of their
// own: an edge's default state (the sliding-sync store) must not land in
// the home directory of whoever runs them, nor outlive the run.
func isolatedState(run func() int) int {
	dir, err := os.MkdirTemp("", "wellknownd-state-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_DATA_HOME", dir)
	return run()
}
