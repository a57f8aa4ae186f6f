package deploytest

import (
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// ComposeVersion is the Docker Compose v2 release the tests build.
const ComposeVersion = "v2.40.3"

// Docker is a Docker Engine of the test's own: its data, state and socket
// live in a temporary directory, and it is stopped when the test ends.
type Docker struct {
	t   testing.TB
	dir string
	// env is what every docker command runs with: this engine's socket,
	// the Compose plugin, the classic builder (BuildKit would fetch its
	// frontend image from a registry).
	env []string
	cmd *exec.Cmd
}

// StartDocker starts dockerd (Debian's docker.io) and waits until it
// answers.
func StartDocker(t testing.TB) *Docker {
	t.Helper()
	need(t, "dockerd", "docker")
	plugins := composePlugin(t)
	// Short paths: the socket's path must fit in sun_path.
	dir, err := os.MkdirTemp("", "wkd-")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config")
	os.MkdirAll(filepath.Join(config, "cli-plugins"), 0o755)
	if err := os.Symlink(plugins, filepath.Join(config, "cli-plugins", "docker-compose")); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	d := &Docker{t: t, dir: dir, env: append(os.Environ(),
		"DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+config, "DOCKER_BUILDKIT=0", "COMPOSE_PROGRESS=plain")}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// No default bridge: every container this test runs is on a network
	// its compose project creates. Those networks come from a pool of this
	// engine's own, so that engines running at once (tests in parallel)
	// never compete for Docker's few default /16s, and a bridge left by a
	// killed run cannot exhaust them.
	pool := fmt.Sprintf("base=10.%d.0.0/16,size=24", 200+int(engines.Add(1)+int64(os.Getpid()))%50)
	d.cmd = exec.Command("dockerd", "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://"+sock, "-p", filepath.Join(dir, "dockerd.pid"), "--bridge=none", "--log-level=warn",
		"--default-address-pool", pool)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// One engine starts at a time: each sets up the host's iptables chains
	// (DOCKER, DOCKER-USER) on start, by "does it exist? create it", and
	// two at once race to "Chain already exists".
	locked(t, "dockerd-start", func() error {
		if err := d.cmd.Start(); err != nil {
			return err
		}
		t.Cleanup(d.stop)
		if err := wait.For(30*time.Second, func() error { _, err := d.Try("", "info"); return err }); err != nil {
			logs, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			return fmt.Errorf("dockerd did not answer: %v\n%s", err, tail(string(logs), 3000))
		}
		return nil
	})
	return d
}

// engines numbers the engines this process starts, for their address
// pools.
var engines atomic.Int64

// stop removes every container and network this engine made, by id, stops
// the engine and removes its directory. The networks' bridge interfaces
// live in the host's namespace and outlive the engine unless removed: a
// run that left them would, after a few dozen, leave no address pool for
// the next.
func (d *Docker) stop() {
	if ids, err := d.Try("", "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
		d.Try("", append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
	}
	nets, _ := d.Try("", "network", "ls", "-q", "--no-trunc", "--filter", "driver=bridge")
	d.Try("", "network", "prune", "-f")
	defer func() {
		for _, id := range strings.Fields(nets) {
			if len(id) >= 12 {
				// Gone already when the prune worked; this is for when
				// it did not.
				exec.Command("ip", "link", "delete", "br-"+id[:12]).Run()
			}
		}
	}()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	removeAll(d.dir)
}

// Command is a docker command against this engine, run in dir.
func (d *Docker) Command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("docker", args...)
	cmd.Dir = dir
	cmd.Env = d.env
	return cmd
}

// Env is the environment docker commands run with against this engine,
// for scripts that run docker themselves.
func (d *Docker) Env() []string { return d.env }

// Try runs docker with args in dir and returns its output.
func (d *Docker) Try(dir string, args ...string) (string, error) {
	return run(d.Command(dir, args...))
}

// Run is Try that fails the test.
func (d *Docker) Run(dir string, args ...string) string {
	d.t.Helper()
	out, err := d.Try(dir, args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// Inspect decodes docker inspect of one object into v.
func (d *Docker) Inspect(v any, args ...string) {
	d.t.Helper()
	out := d.Run("", append([]string{"inspect"}, args...)...)
	var list []json.RawMessage
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		d.t.Fatalf("docker inspect %v: %v\n%s", args, err, out)
	}
	if err := json.Unmarshal(list[0], v); err != nil {
		d.t.Fatal(err)
	}
}

//go:embed standins
var standins embed.FS

// StandIns makes, in this engine, the images the Dockerfile and the
// compose file name, from Debian's packages and this machine's builds:
// golang:1.26-bookworm, gcr.io/distroless/static-debian12:nonroot,
// matrixdotorg/dendrite-monolith:v0.13.8 (also tagged :latest) and
// postgres:15-alpine. Each
// file in standins/ says what of the official image it reproduces.
// dendriteBin is the directory holding Dendrite's binaries.
func (d *Docker) StandIns(dendriteBin string) {
	d.t.Helper()
	var wg sync.WaitGroup
	var base, pg string
	// The two file systems build at once; each takes about a minute.
	wg.Go(func() { base = debianBase.tarball(d.t) })
	wg.Go(func() { pg = debianPostgres.tarball(d.t) })
	wg.Wait()
	if d.t.Failed() {
		d.t.FailNow()
	}
	d.Run("", "import", base, "wellknownd-test/debian-base")
	d.Run("", "import", pg, "wellknownd-test/debian-postgres")

	distroless := filepath.Join(d.dir, "distroless.tar")
	distrolessTar(d.t, distroless)
	d.Run("", "import", "-c", "USER 65532:65532", "-c", "WORKDIR /home/nonroot",
		"-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		distroless, "gcr.io/distroless/static-debian12:nonroot")

	d.build("postgres:15-alpine", "postgres.Dockerfile", map[string]string{"postgres-entrypoint.sh": ""})
	bins := map[string]string{}
	for _, b := range []string{"dendrite", "create-account", "generate-config", "generate-keys"} {
		bins[b] = filepath.Join(dendriteBin, b)
	}
	d.build("matrixdotorg/dendrite-monolith:v0.13.8", "dendrite.Dockerfile", bins)
	// Dendrite's own compose file names :latest, which v0.13.8 is.
	d.Run("", "tag", "matrixdotorg/dendrite-monolith:v0.13.8", "matrixdotorg/dendrite-monolith:latest")
	d.build("golang:1.26-bookworm", "golang.Dockerfile", map[string]string{
		"go": "/usr/local/go", "ca-certificates.crt": "/etc/ssl/certs/ca-certificates.crt"})
}

// build builds tag from standins/dockerfile with a context of files: an
// empty source means the file of that name in standins/. Sources are
// linked, not copied, where the file system allows.
func (d *Docker) build(tag, dockerfile string, files map[string]string) {
	d.t.Helper()
	ctx, err := os.MkdirTemp(d.dir, "ctx-")
	if err != nil {
		d.t.Fatal(err)
	}
	defer os.RemoveAll(ctx)
	for name, src := range files {
		dst := filepath.Join(ctx, name)
		if src == "" {
			b, _ := standins.ReadFile("standins/" + name)
			if err := os.WriteFile(dst, b, 0o755); err != nil {
				d.t.Fatal(err)
			}
			continue
		}
		if _, err := run(exec.Command("cp", "-a", "--reflink=auto", "-l", src, dst)); err != nil {
			if _, err := run(exec.Command("cp", "-a", src, dst)); err != nil {
				d.t.Fatal(err)
			}
		}
	}
	df, _ := standins.ReadFile("standins/" + dockerfile)
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), df, 0o644); err != nil {
		d.t.Fatal(err)
	}
	start := time.Now()
	d.Run(ctx, "build", "-q", "-t", tag, ".")
	d.t.Logf("stand-in %s: %v", tag, time.Since(start).Round(time.Second))
}

// composePlugin builds Docker Compose v2 from the module proxy once into
// the cache and returns the binary. "go install …@version" is refused (the
// module's go.mod has exclude directives), so it is built inside a copy of
// the downloaded module.
func composePlugin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(cacheDir(t), "docker-compose-"+ComposeVersion)
	locked(t, "compose", func() error {
		if _, err := os.Stat(bin); err == nil {
			return nil
		}
		start := time.Now()
		out, err := run(exec.Command("go", "mod", "download", "-json", "github.com/docker/compose/v2@"+ComposeVersion))
		if err != nil {
			return err
		}
		var mod struct{ Dir string }
		if err := json.Unmarshal([]byte(out), &mod); err != nil || mod.Dir == "" {
			return fmt.Errorf("go mod download: no module directory in %q", out)
		}
		src, err := os.MkdirTemp("", "compose-src-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(src)
		if _, err := run(exec.Command("cp", "-r", mod.Dir+"/.", src)); err != nil {
			return err
		}
		exec.Command("chmod", "-R", "u+w", src).Run()
		build := exec.Command("go", "build", "-trimpath", "-ldflags",
			"-X github.com/docker/compose/v2/internal.Version="+ComposeVersion, "-o", bin+".part", "./cmd")
		build.Dir = src
		if _, err := run(build); err != nil {
			return err
		}
		t.Logf("built docker compose %s: %v", ComposeVersion, time.Since(start).Round(time.Second))
		return os.Rename(bin+".part", bin)
	})
	return bin
}
