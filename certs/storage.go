package certs

import (
	"context"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/wellknownd/wellknownd/config"
)

// storage is where a managed source keeps certificates: a directory, or a
// PostgreSQL database that several edges share.
type storage struct {
	dir string
	pg  *PGStorage
}

// openStorage opens tls.storage: it checks that a directory can be
// written, or connects to the database and creates its tables.
func openStorage(opts Options) (storage, error) {
	t := opts.TLS
	if t.StorageKind == config.StoragePostgres {
		var password string
		if t.StoragePasswordFile != "" {
			b, err := os.ReadFile(t.StoragePasswordFile)
			if err != nil {
				return storage{}, fmt.Errorf("tls.storage_password_file: %w", err)
			}
			password = strings.TrimSpace(string(b))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		pg, err := NewPGStorage(ctx, t.Storage, password, opts.Log)
		if err != nil {
			return storage{}, err
		}
		return storage{pg: pg}, nil
	}
	dir, err := StorageDir(t.Storage)
	if err != nil {
		return storage{}, err
	}
	if err := checkWritable(dir); err != nil {
		return storage{}, err
	}
	return storage{dir: dir}, nil
}

func (s storage) certmagic() certmagic.Storage {
	if s.pg != nil {
		return s.pg
	}
	return &certmagic.FileStorage{Path: s.dir}
}

func (s storage) status() StorageStatus {
	if s.pg != nil {
		return s.pg.Status()
	}
	return StorageStatus{Kind: "files", Reachable: true}
}

func (s storage) close() {
	if s.pg != nil {
		s.pg.Close()
	}
}

// StorageDir is where certificates, keys and the ACME account live: the
// configured directory, else systemd's $STATE_DIRECTORY, else the user's
// data directory.
func StorageDir(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		// systemd may pass several, colon-separated; the first is ours.
		return filepath.SplitList(d)[0], nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "wellknownd"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("tls.storage is not set, and there is neither $STATE_DIRECTORY, $XDG_DATA_HOME nor a home directory to default to")
	}
	return filepath.Join(home, ".local", "share", "wellknownd"), nil
}

// checkWritable creates dir if needed and proves it can be written: a
// daemon that finds out at renewal time, 60 days later, finds out too late.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tls.storage %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("tls.storage %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// writeNew creates path with data, refusing whatever is already there: a
// file, or a symlink (even one that points nowhere), which someone with
// write access to the directory could have planted to have a private key
// written where they can read it.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
