package deploytest

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A rootfs is a Debian bookworm file system made by mmdebstrap from
// Debian's packages: the base of every stand-in image.
type rootfs struct {
	name    string
	include []string
}

var (
	// debianBase: ca-certificates and curl, as the Go build image and
	// Dendrite's image have.
	debianBase = rootfs{"debian-base", []string{"ca-certificates", "curl"}}
	// debianPostgres: PostgreSQL 15 server and client.
	debianPostgres = rootfs{"debian-postgres", []string{"postgresql-15", "postgresql-client-15"}}
	// debianSystemd: systemd as init, with what the tests run inside.
	debianSystemd = rootfs{"debian-systemd", []string{"systemd", "systemd-sysv", "dbus", "ca-certificates", "curl", "procps", "passwd", "openssl"}}
)

// tarball returns the path of r as a tar archive, made once per recipe and
// kept in the cache (about a minute each on this machine).
func (r rootfs) tarball(t testing.TB) string {
	t.Helper()
	need(t, "mmdebstrap")
	args := []string{
		"--variant=minbase", "--include=" + strings.Join(r.include, ","),
		// Documentation and translations are not needed to run anything.
		"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*",
		"--format=tar", "bookworm",
	}
	out := filepath.Join(cacheDir(t), fmt.Sprintf("%s-%.12x.tar", r.name, sha256.Sum256([]byte(strings.Join(args, "\x00")))))
	locked(t, r.name, func() error {
		if _, err := os.Stat(out); err == nil {
			return nil
		}
		start := time.Now()
		tmp := out + ".part"
		if _, err := run(exec.Command("mmdebstrap", append(args, tmp)...)); err != nil {
			os.Remove(tmp)
			return err
		}
		t.Logf("mmdebstrap %s: %v", r.name, time.Since(start).Round(time.Second))
		return os.Rename(tmp, out)
	})
	return out
}

// distrolessTar writes the stand-in of gcr.io/distroless/static-debian12:nonroot:
// no shell and no package manager; /etc/passwd and /etc/group with root,
// nobody and nonroot (65532), /home/nonroot owned by nonroot, a world-
// writable /tmp, and the CA certificates (this machine's bundle). Its
// tzdata is left out: nothing in wellknownd reads it.
func distrolessTar(t testing.TB, path string) {
	t.Helper()
	bundle, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dir := func(name string, mode int64, uid int) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid, ModTime: time.Unix(0, 0)})
	}
	file := func(name, data string) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)})
		tw.Write([]byte(data))
	}
	for _, d := range []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "home/", "root/", "var/", "usr/", "usr/local/", "usr/local/bin/"} {
		dir(d, 0o755, 0)
	}
	dir("tmp/", 0o1777, 0)
	dir("home/nonroot/", 0o700, 65532)
	file("etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
	file("etc/group", "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")
	file("etc/ssl/certs/ca-certificates.crt", string(bundle))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
