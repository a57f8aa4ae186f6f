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
func TestMain(m *testing.M) { os.Exit(dnstest.RunIsolated(m)) }
