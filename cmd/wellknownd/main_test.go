package main

import (
	"os"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
)

// asMainEnv makes the test binary run main() with its arguments instead of
// the tests: how the command line tests see the real exit status and the
// two output streams apart (cli_test.go).
const asMainEnv = "WELLKNOWND_TEST_AS_MAIN"

// TestMain keeps every name lookup of these tests on this machine.
func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	// An edge's default state (the sliding-sync store) must not land in
	// the home directory of whoever runs the tests, nor outlive the run.
	dir, err := os.MkdirTemp("", "wellknownd-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_DATA_HOME", dir)
	code := dnstest.RunIsolated(m)
	os.RemoveAll(dir)
	os.Exit(code)
}
