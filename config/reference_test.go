package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/internal/confref"
)

// TestReferenceIsCurrent regenerates docs/configuration-reference.md in
// memory and compares: a field added, a comment or a default changed
// without `go generate ./config` fails here, so the reference users read is
// what the code does.
func TestReferenceIsCurrent(t *testing.T) {
	want, err := confref.Generate(".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", confref.Path))
	if err != nil {
		t.Fatalf("%v (run go generate ./config)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("%s is stale (run go generate ./config); first difference at line %d:\n have: %s\n want: %s", confref.Path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s is stale (run go generate ./config): %d lines, want %d", confref.Path, len(gl), len(wl))
	}
}
