package main

import (
	"os"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
)

// TestMain keeps every name lookup of these tests on this machine.
func TestMain(m *testing.M) { os.Exit(dnstest.RunIsolated(m)) }
