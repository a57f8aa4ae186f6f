package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// asPostgres runs argv as the postgres user (PostgreSQL refuses root),
// for what the test runs itself; the supervised postgres has "user:".
func asPostgres(argv ...string) []string {
	return append([]string{"setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"}, argv...)
}

// TestSupervisePostgresStack: postgres, then Dendrite on PostgreSQL, in
// order; both stopped in reverse order.
func TestSupervisePostgresStack(t *testing.T) {
	bin := dendritetest.PostgresBin(t)
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	// Outside t.TempDir, whose 0700 parents the postgres user cannot enter.
	root, err := os.MkdirTemp("", "wellknownd-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	data, sock := filepath.Join(root, "data"), filepath.Join(root, "sock")
	for _, d := range []string{data, sock} {
		os.Mkdir(d, 0o700)
		os.Chown(d, uid, gid)
	}
	initdb := asPostgres(filepath.Join(bin, "initdb"), "-D", data, "-U", "dendrite", "--auth=trust", "-E", "UTF8", "--locale=C")
	if out, err := exec.Command(initdb[0], initdb[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := strings.TrimPrefix(freeport.Addr(t), "127.0.0.1:")
	den := dendritetest.Setup(t, dendritetest.Options{ServerName: "example.com",
		Database: "postgres://dendrite@127.0.0.1:" + port + "/postgres?sslmode=disable"})

	pgCmd, _ := json.Marshal([]string{filepath.Join(bin, "postgres"), "-D", data, "-k", sock, "-p", port, "-h", "127.0.0.1"})
	denCmd, _ := json.Marshal(den.Command())
	cfg := edgeConfig(den.URL) + fmt.Sprintf(`supervise:
  - name: dendrite
    command: %s
    dir: %s
    after: [postgres]
    ready: {http: "%s/_dendrite/monitor/up"}
  - name: postgres
    command: %s
    user: postgres
    ready: {tcp: "127.0.0.1:%s"}
    stop_signal: SIGINT
`, denCmd, den.Dir, den.URL, pgCmd, port)
	d := startDaemon(t, cfg, "http", "admin")
	d.waitStatus("postgres and dendrite ready", 120*time.Second, func(s statusDoc) bool { return s.UpstreamReady })

	// Dendrite really works on PostgreSQL: an account, a login through the edge.
	cli := loggedInClient(t, d, den, "carol")
	if _, err := cli.CreateRoom(context.Background(), nil); err != nil {
		t.Fatalf("create room on PostgreSQL-backed Dendrite: %v", err)
	}

	if err := d.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	logs := d.stderr.String()
	order := []string{
		`msg=started process=postgres`,
		`msg=ready process=postgres`,
		`msg=started process=dendrite`,
		`msg=ready process=dendrite`,
		`msg=stopping process=dendrite`,
		`msg=stopped process=dendrite`,
		`msg=stopping process=postgres`,
		`msg=stopped process=postgres exit="exit status 0"`,
	}
	at := 0
	for _, step := range order {
		i := strings.Index(logs[at:], step)
		if i < 0 {
			t.Fatalf("log does not show %q after the steps before it:\n%s", step, logs)
		}
		at += i + len(step)
	}
	if out, _ := exec.Command("pgrep", "-f", data).Output(); len(out) > 0 {
		t.Fatalf("postgres processes outlived wellknownd: %s", out)
	}
}
