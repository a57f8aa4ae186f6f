package certs

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/server/config"
)

// TestStorageNotWritableFailsFast: a storage path that cannot be written
// stops start-up with its name, instead of failing at the first renewal.
func TestStorageNotWritableFailsFast(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o600)
	for _, mode := range []string{config.TLSACME, config.TLSInternal} {
		_, err := New(Options{
			TLS:   config.TLS{Mode: mode, Email: "a@example.com", CA: "letsencrypt", Storage: filepath.Join(file, "sub"), Challenges: []string{"http-01"}},
			Hosts: []string{"example.com"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err == nil || !strings.Contains(err.Error(), "tls.storage "+filepath.Join(file, "sub")) {
			t.Fatalf("mode %s with storage under a file: %v", mode, err)
		}
	}
}
