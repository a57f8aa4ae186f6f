package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Defaults are filled in two steps, both here, so that every default value
// lives in this file:
//  1. Default is the configuration a file is decoded onto: a key the file
//     leaves out keeps the value given there.
//  2. fillDefaults then sets the defaults that depend on other values of the
//     file (hosts, the HSTS age, a route's body limit) or that belong to
//     list entries (a route's path, each supervise entry's stop signal and
//     timeout).
//
// Limits that depend on the machine (the connection cap derived from the
// descriptor limit) are not configuration defaults: the server derives them
// when it starts, from limits.max_conns = 0.

// Default returns the configuration a file is decoded onto: every default
// value lives here. Hosts has no default value of its own: when a file
// leaves it out, it becomes the server name's host and the delegated host.
func Default() Config {
	return Config{
		Delegation: Delegation{
			MaxAge: 4 * time.Hour,
		},
		Listen: Listen{
			HTTP:       ":80",
			HTTPS:      ":443",
			Federation: ":8448",
			// Federation only: a base_url on 8448 is what turns it on.
			FederationClientAPI: false,
			Admin:               "127.0.0.1:9090",
			HTTP3:               true,
		},
		TLS: TLS{
			Mode:       TLSACME,
			CA:         "letsencrypt",
			Challenges: []string{ChallengeHTTP01, ChallengeTLSALPN01},
		},
		Upstream:    Upstream{URL: "http://127.0.0.1:8008", MaxBody: 100 << 20},
		SlidingSync: SlidingSync{Enabled: true, IdleTimeout: 10 * time.Minute},
		Compression: Compression{Enabled: true, MinLength: 1 << 10},
		Limits: Limits{
			UpstreamConns:    4096,
			UpstreamWait:     10 * time.Second,
			BodyIdleTimeout:  60 * time.Second,
			BodyMinRate:      1 << 10,
			H2MaxStreams:     128,
			SendTimeout:      60 * time.Second,
			StaticCache:      64 << 20,
			CompressEncoders: 64,
			BufferMemory:     64 << 20,
			BufferDisk:       2 << 30,
		},
		ShutdownTimeout: 10 * time.Second,
		Log:             Log{Format: "text", Level: "info"},
		SelfCheck:       SelfCheck{Interval: 10 * time.Minute},
	}
}

// fillDefaults is the second step: set reports whether the file set a
// field (by its dotted path).
func fillDefaults(c *Config, set func(field string) bool) {
	if !set("hosts") {
		for _, h := range []string{c.BaseHost(), c.DelegatedHost()} {
			if h != "" && !slices.Contains(c.Hosts, h) {
				c.Hosts = append(c.Hosts, h)
			}
		}
	}
	if !set("tls.hsts.max_age") && (c.TLS.Mode == TLSACME || c.TLS.Mode == TLSFiles) {
		c.TLS.HSTS.MaxAge = 365 * 24 * time.Hour
	}
	if !set("limits.buffer_dir") {
		c.Limits.BufferDir = defaultBufferDir(c.TLS.Storage)
	}
	if !set("sliding_sync.store") {
		c.SlidingSync.Store = defaultSlidingSyncStore(c.TLS.Storage)
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Path == "" {
			r.Path = "/"
		}
		if r.MaxBody == 0 {
			r.MaxBody = c.Upstream.MaxBody
		}
	}
	if !set("limits.buffer_disk") {
		// Every body is buffered whole: room for the largest one allowed.
		for _, r := range c.Routes {
			c.Limits.BufferDisk = max(c.Limits.BufferDisk, r.MaxBody)
		}
		c.Limits.BufferDisk = max(c.Limits.BufferDisk, c.Upstream.MaxBody)
	}
	for i := range c.Supervise {
		s := &c.Supervise[i]
		if s.StopSignal == "" {
			s.StopSignal = "SIGTERM"
		}
		if s.StopTimeout == 0 {
			s.StopTimeout = 30 * time.Second
		}
	}
}

// defaultBufferDir is limits.buffer_dir when the file leaves it out: beside
// the certificates when tls.storage is a directory, else systemd's state
// directory, else the system's temporary one.
func defaultBufferDir(storage string) string {
	switch {
	case storage != "" && !strings.HasPrefix(storage, "postgres://") && !strings.HasPrefix(storage, "postgresql://"):
		return filepath.Join(storage, "buffers")
	case os.Getenv("STATE_DIRECTORY") != "":
		// systemd may list several, separated by colons: the first is the
		// unit's own.
		d, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
		return d
	}
	return os.TempDir()
}

// defaultSlidingSyncStore is sliding_sync.store when the file leaves it
// out: tls.storage's database when that is one (one database for
// everything the edges share), else slidingsync.db in the state
// directory; "" when there is none to default to. The state directory is
// the one certificates default to, not limits.buffer_dir's last resort,
// the system's temporary directory: the store holds access tokens, and
// must survive a reboot and stay out of a directory every user can write.
func defaultSlidingSyncStore(storage string) string {
	if isPostgresURL(storage) {
		return storage
	}
	if storage != "" {
		return filepath.Join(storage, "slidingsync.db")
	}
	if d, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":"); d != "" {
		return filepath.Join(d, "slidingsync.db")
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "wellknownd", "slidingsync.db")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "wellknownd", "slidingsync.db")
	}
	return ""
}
