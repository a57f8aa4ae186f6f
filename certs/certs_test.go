package certs

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/config"
)

// TestStorageNotWritableFailsFast: a storage path that cannot be written
// stops start-up with its name, instead of failing at the first renewal.
func TestStorageNotWritableFailsFast(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o600)
	for _, mode := range []config.TLSMode{config.TLSACME, config.TLSInternal} {
		_, err := New(Options{
			TLS:   config.TLS{Mode: mode, Email: "a@example.com", CA: "letsencrypt", Storage: filepath.Join(file, "sub"), Challenges: []string{"http-01"}},
			Hosts: []string{"example.com"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err == nil || !strings.Contains(err.Error(), "tls.storage "+filepath.Join(file, "sub")) {
			t.Fatalf("mode %s with storage under a file: %v", mode, err)
		}
	}
}

// TestInternalCAKeyNotWrittenThroughSymlink: a dangling symlink planted
// where the internal CA's key goes is refused, not followed: the key is
// never written where the link points.
func TestInternalCAKeyNotWrittenThroughSymlink(t *testing.T) {
	storage, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "stolen.key")
	os.MkdirAll(filepath.Join(storage, "internal-ca"), 0o700)
	if err := os.Symlink(target, filepath.Join(storage, "internal-ca", "root.key")); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{
		TLS:   config.TLS{Mode: config.TLSInternal, Storage: storage},
		Hosts: []string{"localhost"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil || !strings.Contains(err.Error(), "internal CA: writing its key") {
		t.Fatalf("a planted symlink gave %v", err)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Fatal("the CA's key was written through the symlink")
	}
}
