package config

import (
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// minSlidingSyncIdle is the shortest idle_timeout: below it a client that
// merely backgrounds its app for a moment would restart its poller, and
// the homeserver would see a full sync for each.
const minSlidingSyncIdle = time.Minute

// isPostgresURL reports whether a storage value names a PostgreSQL
// database rather than a path.
func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// validateSlidingSync checks sliding_sync and resolves its store into
// SQLitePath or PostgresURL. A disabled section's store is not checked:
// nothing opens it.
func (v *validator) validateSlidingSync() {
	ss := &v.cfg.SlidingSync
	if ss.IdleTimeout < minSlidingSyncIdle {
		v.errf("sliding_sync.idle_timeout", "is %s; it must be 1m or more, e.g. 10m", ss.IdleTimeout)
	}
	if !ss.Enabled {
		return
	}
	_, explicit := v.lines["sliding_sync.store"]
	// Where a defaulted value came from, for the message: the operator
	// did not write it, and must be told what to change.
	from := ""
	if !explicit {
		from = " (the default, from tls.storage or the state directory; set sliding_sync.store)"
	}
	switch {
	case ss.Store == "":
		v.errf("sliding_sync.store", "has no default: tls.storage is not set, and there is neither $STATE_DIRECTORY, $XDG_DATA_HOME nor a home directory; set it to a file path or a postgres:// URL")
	case isPostgresURL(ss.Store):
		if !explicit && v.reported("tls.storage") {
			// The same URL, already reported where it was written.
			return
		}
		v.resolveSlidingSyncPostgres(ss.Store, from)
	default:
		if err := writableFile(ss.Store); err != nil {
			v.errf("sliding_sync.store", "%q%s %v", ss.Store, from, err)
			return
		}
		ss.SQLitePath = filepath.Clean(ss.Store)
	}
}

// reported says whether an error was already reported on field.
func (v *validator) reported(field string) bool {
	for _, p := range v.problems {
		if !p.Warning && p.Field == field {
			return true
		}
	}
	return false
}

// resolveSlidingSyncPostgres sets PostgresURL from a postgres:// store. The
// database of tls.storage gets tls.storage_password_file's password, as
// the certificate storage does; another one brings its own password
// ($PGPASSWORD, ~/.pgpass).
func (v *validator) resolveSlidingSyncPostgres(store, from string) {
	u, err := url.Parse(store)
	switch {
	case err != nil:
		v.errf("sliding_sync.store", "is not a URL%s: %v", from, err)
		return
	case u.Host == "" || strings.Trim(u.Path, "/") == "":
		v.errf("sliding_sync.store", "%q%s needs a host and a database: postgres://USER@HOST:5432/DATABASE", u.Redacted(), from)
		return
	}
	t := v.cfg.TLS
	if store != t.Storage {
		if _, set := u.User.Password(); set {
			v.warnf("sliding_sync.store", "holds a password; put it in $PGPASSWORD or ~/.pgpass so that this file can stay readable")
		}
	} else if t.StoragePasswordFile != "" {
		b, err := os.ReadFile(t.StoragePasswordFile)
		if err != nil {
			// validateStorage reports the file itself.
			return
		}
		// In memory only: the URL is handed to the store's driver and
		// never logged (Redacted) nor written.
		u.User = url.UserPassword(u.User.Username(), strings.TrimSpace(string(b)))
	}
	v.cfg.SlidingSync.PostgresURL = u.String()
}

// writableFile says why a database file could not be created or written
// at path, or nil. It creates nothing: validate runs before the daemon
// does (and as "wellknownd validate"), so it asks the kernel whether the
// file, or else the nearest directory that exists above it, may be
// written, where serve would create the rest.
func writableFile(path string) error {
	if !filepath.IsAbs(path) {
		return errors.New("is relative; give an absolute path: the daemon's working directory is not where its state belongs")
	}
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return errors.New("is a directory; name the database file in it, e.g. " + filepath.Join(path, "slidingsync.db"))
		}
		return access(path, "file")
	}
	dir := filepath.Dir(path)
	for {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return errors.New("cannot be created: " + dir + " is not a directory")
			}
			return access(dir, "directory")
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return unwrapPathError(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return unwrapPathError(err)
		}
		dir = parent
	}
}

// access reports an error unless this process may write what is at path
// (and, for a directory, create files in it).
func access(path, what string) error {
	mode := uint32(2) // W_OK
	if what == "directory" {
		mode |= 1 // X_OK
	}
	if err := syscall.Access(path, mode); err != nil {
		return errors.New("cannot be written: the " + what + " " + path + ": " + err.Error())
	}
	return nil
}
