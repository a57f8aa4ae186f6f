package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const bufferBase = "server_name: example.com\ndelegation:\n  server: matrix.example.com\n  client_base_url: https://matrix.example.com\n"

// TestBufferDirDefault: limits.buffer_dir is beside the certificates when
// tls.storage is a directory, else systemd's state directory, else the
// system's temporary one; a file's own value wins.
func TestBufferDirDefault(t *testing.T) {
	state := t.TempDir()
	for _, c := range []struct {
		name, yaml, stateDir, want string
	}{
		{"storage dir", "tls: {mode: internal, storage: /var/lib/wk}\n", state, "/var/lib/wk/buffers"},
		{"storage database", "tls: {storage: postgres://wk@db/wk, email: a@example.com}\n", state, state},
		{"systemd", "tls: {mode: \"off\"}\n", state + ":/var/lib/other", state},
		{"neither", "tls: {mode: \"off\"}\n", "", os.TempDir()},
		{"set", "tls: {mode: internal, storage: /var/lib/wk}\nlimits: {buffer_dir: /srv/buf}\n", state, "/srv/buf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", c.stateDir)
			cfg, problems := Parse("w.yaml", []byte(bufferBase+c.yaml))
			if errs := problems.Errors(); len(errs) != 0 {
				t.Fatalf("problems: %v", errs)
			}
			if cfg.Limits.BufferDir != filepath.Clean(c.want) {
				t.Errorf("buffer_dir = %q, want %q", cfg.Limits.BufferDir, c.want)
			}
		})
	}
}

// TestBufferBudgets: the defaults, buffer_disk following a max_body above
// its default, and the errors naming the field.
func TestBufferBudgets(t *testing.T) {
	base := bufferBase + "tls: {mode: \"off\"}\n"
	cfg, problems := Parse("w.yaml", []byte(base))
	if len(problems.Errors()) != 0 || cfg.Limits.BufferMemory != 64<<20 || cfg.Limits.BufferDisk != 2<<30 {
		t.Fatalf("defaults: memory %s, disk %s, %v", cfg.Limits.BufferMemory, cfg.Limits.BufferDisk, problems)
	}
	cfg, problems = Parse("w.yaml", []byte(base+"upstream: {max_body: 5GiB}\n"))
	if len(problems.Errors()) != 0 || cfg.Limits.BufferDisk != 5<<30 {
		t.Fatalf("max_body 5GiB: buffer_disk %s, %v", cfg.Limits.BufferDisk, problems)
	}
	for _, c := range []struct{ yaml, field, says string }{
		{"limits: {buffer_memory: 1KiB}\n", "limits.buffer_memory", "64KiB or more"},
		{"upstream: {max_body: 5GiB}\nlimits: {buffer_disk: 1GiB}\n", "limits.buffer_disk", "less than upstream.max_body (5GiB)"},
		{"limits: {buffer_dir: \"\"}\n", "limits.buffer_dir", "must name a directory"},
	} {
		_, problems := Parse("w.yaml", []byte(base+c.yaml))
		found := false
		for _, p := range problems.Errors() {
			if p.Field == c.field && strings.Contains(p.Msg, c.says) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: want an error on %s saying %q, got %v", c.yaml, c.field, c.says, problems)
		}
	}
}
