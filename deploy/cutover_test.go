package deploy_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/deploytest"
	"github.com/wellknownd/wellknownd/internal/testing/localca"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestCutoverDrill moves a running homeserver behind wellknownd the way the
// README says, and back. The existing server is Dendrite's own v0.13.8
// compose file (PostgreSQL and the monolith publishing 8008 and 8448, the
// latter with a certificate in ./config as acme.sh installs it), with the
// documents served by a stand-in for a Cloudflare Worker, an account, a
// room and a message. The compose stack publishes the real ports 80, 443,
// 8008 and 8448 on this machine, as the README's commands do.
func TestCutoverDrill(t *testing.T) {
	t.Parallel()
	start := time.Now()
	d := deploytest.StartDocker(t)
	d.StandIns(dendritetest.Binaries(t))
	buildImage(t, d)
	bin := deploytest.Build(t, t.TempDir())
	t.Logf("engine, stand-ins and image ready after %v", time.Since(start).Round(time.Second))

	// The existing deployment: Dendrite's compose file, with the TLS flags
	// the acme.sh setup adds; its config, key and certificate in ./config.
	project := filepath.Join(t.TempDir(), "dendrite")
	config := filepath.Join(project, "config")
	os.MkdirAll(config, 0o755)
	composeFile := string(dendritetest.SourceFile(t, "build/docker/docker-compose.yml"))
	const image = "    image: matrixdotorg/dendrite-monolith:latest\n"
	if !strings.Contains(composeFile, image) {
		t.Fatalf("Dendrite's compose file changed:\n%s", composeFile)
	}
	composeFile = strings.Replace(composeFile, image, image+"    command: [--tls-cert, server.crt, --tls-key, server.key]\n", 1)
	writeFile(t, filepath.Join(project, "docker-compose.yml"), composeFile, 0o644)
	bins := dendritetest.Binaries(t)
	gen, err := exec.Command(filepath.Join(bins, "generate-config"), "-server", "example.com",
		"-db", "postgres://dendrite:itsasecret@postgres/dendrite?sslmode=disable", "-dir", "/var/dendrite").Output()
	if err != nil {
		t.Fatalf("generate-config: %v", err)
	}
	// create-account registers through the shared secret, which a server
	// that has accounts has set.
	const noSecret = `registration_shared_secret: ""`
	if !strings.Contains(string(gen), noSecret) {
		t.Fatalf("generate-config wrote no %s", noSecret)
	}
	writeFile(t, filepath.Join(config, "dendrite.yaml"), strings.Replace(string(gen), noSecret, `registration_shared_secret: "an existing secret"`, 1), 0o600)
	if out, err := exec.Command(filepath.Join(bins, "generate-keys"), "-private-key", filepath.Join(config, "matrix_key.pem")).CombinedOutput(); err != nil {
		t.Fatalf("generate-keys: %v\n%s", err, out)
	}
	ca := localca.New(t)
	rootFile := filepath.Join(t.TempDir(), "root.crt")
	writeFile(t, rootFile, string(ca.PEM()), 0o644)
	// acme.sh creates a key file 0600, owned by whoever runs it (root).
	installCert := func(names ...string) [32]byte {
		t.Helper()
		c := ca.Issue(t, names...)
		key, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		// Written into the existing files, as acme.sh's --install-cert does.
		writeInPlace(t, filepath.Join(config, "server.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644)
		writeInPlace(t, filepath.Join(config, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
		return sha256.Sum256(c.Certificate[0])
	}
	firstCert := installCert("matrix.example.com", "example.com")

	// The Worker: the documents for example.com, without CORS, as many
	// hand-written ones are.
	worker := ca.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/matrix/server":
			io.WriteString(w, `{"m.server":"matrix.example.com:8448"}`)
		case "/.well-known/matrix/client":
			io.WriteString(w, `{"m.homeserver":{"base_url":"https://matrix.example.com:8448"}}`)
		default:
			http.NotFound(w, r)
		}
	}), "example.com")

	// Where names resolve: example.com to the Worker before the cutover
	// and after the rollback, to this machine (wellknownd) in between.
	var mu sync.Mutex
	routes := map[string]string{"example.com:443": worker, "matrix.example.com:443": "127.0.0.1:443", "matrix.example.com:8448": "127.0.0.1:8448"}
	route := func(addr, to string) { mu.Lock(); routes[addr] = to; mu.Unlock() }
	roots := ca.Pool()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DisableKeepAlives: true, // each request sees the current routes and certificate
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			to, ok := routes[addr]
			mu.Unlock()
			if !ok {
				return nil, fmt.Errorf("no route for %s in the test", addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, to)
		},
	}}

	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-euc", script)
		cmd.Dir = project
		cmd.Env = append(d.Env(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			logs, _ := d.Try(project, "compose", "logs", "--no-color", "--tail", "30")
			t.Fatalf("%s: %v\n%s\n%s", script, err, out, logs)
		}
		return string(out)
	}
	// Dendrite itself on 8448, as the old stack serves clients and servers.
	dendriteAnswers := func(stage string) {
		t.Helper()
		if err := wait.For(120*time.Second, func() error {
			resp, err := client.Get("https://matrix.example.com:8448/_matrix/client/versions")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		}); err != nil {
			logs, _ := d.Try(project, "compose", "logs", "--no-color", "--tail", "40")
			t.Fatalf("%s: Dendrite does not answer on 8448: %v\n%s", stage, err, logs)
		}
	}
	sh("docker compose up -d --wait")
	dendriteAnswers("the existing stack")

	// Its account, room and message.
	const password = "an existing password"
	create := d.Command(project, "compose", "exec", "-T", "monolith", "create-account", "-config", "/etc/dendrite/dendrite.yaml",
		"-username", "alice", "-passwordstdin")
	create.Stdin = strings.NewReader(password + "\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("create-account: %v\n%s", err, out)
	}
	ctx := context.Background()
	login := func(stage string) *mautrix.Client {
		t.Helper()
		wk, err := mautrix.DiscoverClientAPIWithClient(ctx, client, "example.com")
		if err != nil || wk == nil {
			t.Fatalf("%s: client discovery for example.com: %v", stage, err)
		}
		cli, err := mautrix.NewClient(wk.Homeserver.BaseURL, "", "")
		if err != nil {
			t.Fatal(err)
		}
		cli.Client = client
		if _, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: password, StoreCredentials: true}); err != nil {
			t.Fatalf("%s: login at %s: %v", stage, wk.Homeserver.BaseURL, err)
		}
		t.Logf("%s: alice logged in at %s", stage, wk.Homeserver.BaseURL)
		return cli
	}
	cli := login("before")
	if cli.HomeserverURL.String() != "https://matrix.example.com:8448" {
		t.Fatalf("before: discovered %s, want the Worker's https://matrix.example.com:8448", cli.HomeserverURL)
	}
	room, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "drill"})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	const text = "sent before the cutover"
	if _, err := cli.SendText(ctx, room.RoomID, text); err != nil {
		t.Fatalf("send: %v", err)
	}
	readRoom := func(stage string, cli *mautrix.Client) {
		t.Helper()
		msgs, err := cli.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatalf("%s: reading the room: %v", stage, err)
		}
		for _, ev := range msgs.Chunk {
			if ev.Type == event.EventMessage && ev.Content.Raw["body"] == text {
				return
			}
		}
		t.Fatalf("%s: the message is not in the room (%d events)", stage, len(msgs.Chunk))
	}
	signingKeys := func(stage, base string) []string {
		t.Helper()
		resp, err := client.Get(base + "/_matrix/key/v2/server")
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		defer resp.Body.Close()
		var keys struct {
			ServerName string                     `json:"server_name"`
			VerifyKeys map[string]json.RawMessage `json:"verify_keys"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&keys); err != nil || keys.ServerName != "example.com" {
			t.Fatalf("%s: signing keys from %s: %v %+v", stage, base, err, keys)
		}
		var ids []string
		for k := range keys.VerifyKeys {
			ids = append(ids, k)
		}
		return ids
	}
	// The client logged in before the cutover syncs, and keeps its
	// base_url, its access token and its sync token across it, as Element
	// does: it never logs in again.
	first, err := cli.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatalf("before: sync: %v", err)
	}
	since := first.NextBatch
	keysBefore := signingKeys("before", "https://matrix.example.com:8448")
	if len(keysBefore) != 1 {
		t.Fatalf("before: signing keys %v", keysBefore)
	}
	t.Logf("existing stack up with account, room and key %s after %v", keysBefore[0], time.Since(start).Round(time.Second))

	// The cutover, as docs/adopt.md says, in the compose file's directory.
	// adopt fetches the documents the Worker serves, as a remote server
	// would: here the Worker's address and CA are given to it, since the
	// test's names are not in DNS.
	block := docBlock(t, "adopt")
	if !strings.HasPrefix(block, "wellknownd adopt ") {
		t.Fatalf("docs/adopt.md's adopt block:\n%s", block)
	}
	out := sh(strings.Replace(block, "wellknownd adopt ", "wellknownd adopt -resolve example.com:443:"+worker+" -ca-file "+rootFile+" ", 1))
	t.Logf("adopt and up:\n%s", out)
	for _, want := range []string{"the signing key " + keysBefore[0], "service monolith stops publishing 8008:8008, 8448:8448",
		"sync_api.real_ip_header", "\nFirst, as root:\n  chgrp 65532 " + filepath.Join(config, "server.key"),
		"    {\"m.server\":\"matrix.example.com:8448\"}\n    - m.server: as https://example.com/.well-known/matrix/server serves it today",
		"the federation port 8448 serves the client API too", "\n/etc/wellknownd/wellknownd.yaml: valid\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("adopt's output lacks %q", want)
		}
	}
	// What docs/adopt.md tells to run is what adopt printed.
	for heading, block := range map[string]string{"Then start it:": "docker compose up -d --wait\n", "To go back to how it was:": docBlock(t, "adopt-rollback")} {
		if got := printedSteps(t, out, heading) + "\n"; got != "cd "+project+" && "+block {
			t.Errorf("adopt printed under %q:\n%s\ndocs/adopt.md says:\n%s", heading, got, block)
		}
	}
	route("example.com:443", "127.0.0.1:443")

	resp, err := client.Get("https://example.com/.well-known/matrix/server")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"m.server":"matrix.example.com:8448"}` || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("the server document after the cutover: %s, CORS %q", body, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	check := exec.Command(bin, "check", "-ca-file", rootFile, "-resolve", "example.com:443:127.0.0.1:443",
		"-resolve", "matrix.example.com:8448:127.0.0.1:8448", "example.com")
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("wellknownd check after the cutover: %v\n%s", err, out)
	}
	for _, base := range []string{"https://matrix.example.com", "https://matrix.example.com:8448"} {
		if got := signingKeys("after", base); len(got) != 1 || got[0] != keysBefore[0] {
			t.Errorf("after the cutover, %s serves signing keys %v, want %s", base, got, keysBefore[0])
		}
	}
	// The client from before the cutover, as it was: its sync goes on
	// from where it was, through wellknownd's 8448, and sees what another
	// login sends now.
	if _, err := cli.SyncRequest(ctx, 0, since, "", false, ""); err != nil {
		t.Fatalf("after: the client logged in before the cutover cannot sync: %v", err)
	}
	fresh := login("after")
	if fresh.HomeserverURL.String() != "https://matrix.example.com:8448" {
		t.Errorf("discovered %s, want https://matrix.example.com:8448, as the Worker said", fresh.HomeserverURL)
	}
	readRoom("after", fresh)
	const later = "sent after the cutover"
	if _, err := fresh.SendText(ctx, room.RoomID, later); err != nil {
		t.Fatalf("after: send: %v", err)
	}
	if err := wait.For(60*time.Second, func() error {
		resp, err := cli.SyncRequest(ctx, 5000, since, "", false, "")
		if err != nil {
			return fmt.Errorf("the client logged in before the cutover cannot sync: %w", err)
		}
		since = resp.NextBatch
		joined := resp.Rooms.Join[room.RoomID]
		if joined == nil {
			// An incremental sync leaves out a room where nothing happened.
			return fmt.Errorf("its sync has not brought %q yet", later)
		}
		for _, ev := range joined.Timeline.Events {
			if ev.Type == event.EventMessage && ev.Content.Raw["body"] == later {
				return nil
			}
		}
		return fmt.Errorf("its sync has not brought %q yet", later)
	}); err != nil {
		t.Errorf("after: %v", err)
	}
	readRoom("after, the client from before", cli)
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:8008", 2*time.Second); err == nil {
		conn.Close()
		t.Errorf("Dendrite's plain HTTP is still published on 8008")
	}
	served := func() [32]byte {
		t.Helper()
		conn, err := tls.Dial("tcp", "127.0.0.1:443", &tls.Config{ServerName: "matrix.example.com", RootCAs: roots})
		if err != nil {
			t.Fatalf("TLS: %v", err)
		}
		defer conn.Close()
		return sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	}
	if served() != firstCert {
		t.Errorf("wellknownd does not serve the certificate from config/server.crt")
	}
	// A renewal: acme.sh writes the new pair into the same files and runs
	// the reload command the README gives.
	renewed := installCert("matrix.example.com", "example.com")
	sh("docker compose kill -s HUP wellknownd")
	if err := wait.For(10*time.Second, func() error {
		if served() != renewed {
			return fmt.Errorf("still the old certificate")
		}
		return nil
	}); err != nil {
		t.Errorf("after the renewal and the reload: %v", err)
	}

	// The way back.
	sh(docBlock(t, "adopt-rollback"))
	route("example.com:443", worker)
	dendriteAnswers("after the rollback")
	if ps := d.Run(project, "compose", "ps", "--all", "--format", "{{.Service}}"); strings.Contains(ps, "wellknownd") {
		t.Errorf("wellknownd still runs after the rollback:\n%s", ps)
	}
	if got := signingKeys("rolled back", "https://matrix.example.com:8448"); len(got) != 1 || got[0] != keysBefore[0] {
		t.Errorf("after the rollback the signing keys are %v, want %s", got, keysBefore[0])
	}
	readRoom("rolled back", login("rolled back"))
	t.Logf("cutover drill took %v", time.Since(start).Round(time.Second))
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// writeInPlace writes into an existing file without changing its owner or
// mode (acme.sh's "cat new > file"), creating it with mode otherwise.
func writeInPlace(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err == nil {
		_, err = f.Write(data)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}
