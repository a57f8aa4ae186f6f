package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const ssBase = "server_name: example.com\ndelegation:\n  server: matrix.example.com\n  client_base_url: https://matrix.example.com\n"

// TestSlidingSyncStoreDefault: the store is tls.storage's database when
// that is PostgreSQL (its password file's password in the URL), else
// slidingsync.db in the state directory: tls.storage's directory, else
// $STATE_DIRECTORY, else $XDG_DATA_HOME/wellknownd, else the home
// directory's; a file's own value wins.
func TestSlidingSyncStoreDefault(t *testing.T) {
	state, xdg, home := t.TempDir(), t.TempDir(), t.TempDir()
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	for _, c := range []struct {
		name, yaml, stateDir, xdg string
		sqlite, pg                string
	}{
		{"storage dir", "tls: {mode: internal, storage: " + state + "/certs}\n", "", "", state + "/certs/slidingsync.db", ""},
		{"storage database", "tls: {mode: internal, storage: \"postgres://wk@db.example.com/wk\", storage_password_file: " + pw + "}\n", state, xdg,
			"", "postgres://wk:s3cret@db.example.com/wk"},
		{"storage database, password from the environment", "tls: {mode: internal, storage: \"postgresql://wk@db.example.com:5433/wk?sslmode=require\"}\n", state, xdg,
			"", "postgresql://wk@db.example.com:5433/wk?sslmode=require"},
		{"systemd", "tls: {mode: \"off\"}\n", state + ":/var/lib/other", xdg, state + "/slidingsync.db", ""},
		{"xdg", "tls: {mode: \"off\"}\n", "", xdg, xdg + "/wellknownd/slidingsync.db", ""},
		{"home", "tls: {mode: \"off\"}\n", "", "", home + "/.local/share/wellknownd/slidingsync.db", ""},
		{"set file", "tls: {mode: internal, storage: /var/lib/wk}\nsliding_sync: {store: " + state + "/ss/db.sqlite}\n", state, xdg, state + "/ss/db.sqlite", ""},
		{"set database", "tls: {mode: internal, storage: " + state + "}\nsliding_sync: {store: \"postgres://ss@pg.example.com/ss\"}\n", state, xdg,
			"", "postgres://ss@pg.example.com/ss"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", c.stateDir)
			t.Setenv("XDG_DATA_HOME", c.xdg)
			t.Setenv("HOME", home)
			cfg, problems := Parse("w.yaml", []byte(ssBase+c.yaml))
			if errs := problems.Errors(); len(errs) != 0 {
				t.Fatalf("problems: %v", errs)
			}
			ss := cfg.SlidingSync
			if !ss.Enabled || ss.IdleTimeout != 10*time.Minute {
				t.Errorf("enabled %t, idle_timeout %s; want true, 10m by default", ss.Enabled, ss.IdleTimeout)
			}
			if ss.SQLitePath != c.sqlite || ss.PostgresURL != c.pg {
				t.Errorf("resolved to sqlite %q, postgres %q; want %q, %q", ss.SQLitePath, ss.PostgresURL, c.sqlite, c.pg)
			}
		})
	}
}

// TestSlidingSyncProblems: each mistake is reported on its line and field,
// saying what to do; a disabled section's store is not looked at.
func TestSlidingSyncProblems(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	base := ssBase + "tls: {mode: internal, storage: " + dir + "}\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"relative", "sliding_sync:\n  store: state/ss.db\n",
			`w.yaml:7: sliding_sync.store: "state/ss.db" is relative; give an absolute path: the daemon's working directory is not where its state belongs`},
		{"under a file", "sliding_sync:\n  store: " + file + "/sub/ss.db\n",
			`w.yaml:7: sliding_sync.store: "` + file + `/sub/ss.db" cannot be created: ` + file + ` is not a directory`},
		{"a directory", "sliding_sync:\n  store: " + dir + "\n",
			`w.yaml:7: sliding_sync.store: "` + dir + `" is a directory; name the database file in it, e.g. ` + dir + `/slidingsync.db`},
		{"bad URL", "sliding_sync:\n  store: \"postgres://db.example.com\"\n",
			`w.yaml:7: sliding_sync.store: "postgres://db.example.com" needs a host and a database: postgres://USER@HOST:5432/DATABASE`},
		{"unparsable URL", "sliding_sync:\n  store: \"postgres://wk@db:port/wk\"\n",
			`w.yaml:7: sliding_sync.store: is not a URL: parse "postgres://wk@db:port/wk": invalid port ":port" after host`},
		{"short idle", "sliding_sync:\n  enabled: true\n  idle_timeout: 30s\n",
			"w.yaml:8: sliding_sync.idle_timeout: is 30s; it must be 1m or more, e.g. 10m"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, problems := Parse("w.yaml", []byte(base+c.yaml))
			var got []string
			for _, p := range problems.Errors() {
				got = append(got, p.String())
			}
			if !slices.Contains(got, c.want) {
				t.Errorf("want %q among %q", c.want, got)
			}
		})
	}

	// A relative tls.storage makes a relative default: the message says
	// where the value came from.
	_, problems := Parse("w.yaml", []byte(ssBase+"tls: {mode: internal, storage: certs}\n"))
	want := `w.yaml: sliding_sync.store: "certs/slidingsync.db" (the default, from tls.storage or the state directory; set sliding_sync.store) is relative; give an absolute path: the daemon's working directory is not where its state belongs`
	var got []string
	for _, p := range problems.Errors() {
		got = append(got, p.String())
	}
	if !slices.Contains(got, want) {
		t.Errorf("relative tls.storage: want %q among %q", want, got)
	}

	// Disabled: nothing opens the store, nothing checks it.
	cfg, problems := Parse("w.yaml", []byte(base+"sliding_sync: {enabled: false, store: state/ss.db}\n"))
	if errs := problems.Errors(); len(errs) != 0 || cfg.SlidingSync.SQLitePath != "" || cfg.SlidingSync.PostgresURL != "" {
		t.Errorf("disabled: %v, resolved %+v", errs, cfg.SlidingSync)
	}
}
