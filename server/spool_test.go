package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestBufferDirAtStart: Run creates limits.buffer_dir, mode 0700, before
// it serves; a directory that cannot be made is an error that names the
// field, and nothing is served.
func TestBufferDirAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "buffers")
	addr := freeport.Addr(t)
	startEdge(t, edgeconf.New(edgeconf.Listen(addr, "", "", ""))+fmt.Sprintf("limits: {buffer_dir: %q}\n", dir), onListeners)
	wait.TCP(t, addr)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("buffer_dir after start: %v %v", fi, err)
	}

	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	cfg, problems := config.Parse("edge.yaml", []byte(edgeconf.New(edgeconf.Listen(freeport.Addr(t), "", "", ""))+
		fmt.Sprintf("limits: {buffer_dir: %q}\n", filepath.Join(file, "buffers"))))
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := New(cfg, slog.New(slog.DiscardHandler)).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "limits.buffer_dir") {
		t.Fatalf("Run with a buffer_dir under a file: %v", err)
	}
}
