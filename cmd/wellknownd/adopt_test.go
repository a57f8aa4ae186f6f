package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/wellknownd/wellknownd/internal/dendriteadmin"
	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/localca"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestAdoptFrontsRunningDendrite: "wellknownd adopt" without -compose
// fronts a Dendrite already running on this host. The configuration it
// writes, with only the listen addresses moved to free ports, serves the
// documents and the running Dendrite's own signing key, and its account
// logs in through the edge; Dendrite's files are not touched.
func TestAdoptFrontsRunningDendrite(t *testing.T) {
	den := dendritetest.Start(t, dendritetest.Options{ServerName: "example.com"})
	dendriteFiles := func() string {
		a, _ := os.ReadFile(den.ConfigPath)
		b, _ := os.ReadFile(filepath.Join(den.Dir, "matrix_key.pem"))
		return string(a) + string(b)
	}
	before := dendriteFiles()
	keyPEM, _ := os.ReadFile(filepath.Join(den.Dir, "matrix_key.pem"))
	blk, _ := pem.Decode(keyPEM)
	keyID := blk.Headers["Key-ID"]

	dir := filepath.Join(t.TempDir(), "wellknownd")
	args := []string{"adopt", "-dendrite-config", den.ConfigPath, "-server-name", "example.com", "-delegate", "matrix.example.com",
		"-upstream", den.URL, "-dir", dir, "-tls", "internal", "-resolve", "example.com:443:" + freeport.Addr(t)}
	var out bytes.Buffer
	if err := run(context.Background(), append(args, "-dry-run"), &out, &out); err != nil {
		t.Fatalf("adopt -dry-run: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(dir); err == nil || !strings.Contains(out.String(), "Nothing was written (-dry-run).") {
		t.Fatalf("adopt -dry-run wrote %s:\n%s", dir, out.String())
	}
	out.Reset()
	if err := run(context.Background(), args, &out, &out); err != nil {
		t.Fatalf("adopt: %v\n%s", err, out.String())
	}
	for _, want := range []string{"the signing key " + keyID, "\nFirst, as root:\n  restart Dendrite listening only on " + den.Addr,
		"  install -m 644 " + filepath.Join(dir, "wellknownd.service"), "sync_api.real_ip_header"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("adopt's output lacks %q:\n%s", want, out.String())
		}
	}
	// A second run changes nothing and says why.
	if err := run(context.Background(), args, &out, &out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second adopt: %v", err)
	}

	cfg, err := os.ReadFile(filepath.Join(dir, "wellknownd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.NewReplacer(`http: ":80"`, `http: "127.0.0.1:0"`, `https: ":443"`, `https: "127.0.0.1:0"`,
		`federation: ":8448"`, `federation: "127.0.0.1:0"`, `admin: "127.0.0.1:9090"`, `admin: "127.0.0.1:0"`).Replace(string(cfg))
	d := startDaemon(t, moved, "https", "federation")
	root, err := os.ReadFile(filepath.Join(dir, "tls", "internal-ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(root)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, d.addrs["https"])
		}}}

	// The local CA issues for each name in the background once the
	// listeners are up.
	if err := wait.For(10*time.Second, func() error {
		for _, host := range []string{"example.com", "matrix.example.com"} {
			conn, err := tls.Dial("tcp", d.addrs["https"], &tls.Config{ServerName: host, RootCAs: roots})
			if err != nil {
				return err
			}
			conn.Close()
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, d.stderr)
	}
	resp, err := client.Get("https://example.com/.well-known/matrix/server")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); body != `{"m.server":"matrix.example.com:443"}` || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("server document: %s, CORS %q", body, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp, err = client.Get("https://matrix.example.com/_matrix/key/v2/server")
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		VerifyKeys map[string]any `json:"verify_keys"`
	}
	json.Unmarshal([]byte(readBody(t, resp)), &keys)
	if _, ok := keys.VerifyKeys[keyID]; !ok || len(keys.VerifyKeys) != 1 {
		t.Errorf("signing keys through the edge: %v, want only %s", keys.VerifyKeys, keyID)
	}

	ctx := context.Background()
	if _, err := dendriteadmin.Register(ctx, den.URL, "example.com", den.Secret, "alice", "an adopted password", false); err != nil {
		t.Fatal(err)
	}
	wk, err := mautrix.DiscoverClientAPIWithClient(ctx, client, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := mautrix.NewClient(wk.Homeserver.BaseURL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cli.Client = client
	if _, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "an adopted password"}); err != nil {
		t.Fatalf("login through the adopted edge: %v", err)
	}
	if dendriteFiles() != before {
		t.Error("adopt changed Dendrite's configuration or key")
	}
}

// TestAdoptRefusesFlagsOfTheOtherMode: a flag that only one mode reads is
// refused in the other, before anything is read, rather than ignored.
func TestAdoptRefusesFlagsOfTheOtherMode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-compose", "docker-compose.yml", "-dir", "/srv/x"}, "adopt: -dir is for a Dendrite on this host, not with -compose"},
		{[]string{"-compose", "docker-compose.yml", "-upstream", "http://127.0.0.1:8008"}, "adopt: -upstream is for a Dendrite on this host"},
		{[]string{"-service", "dendrite"}, "adopt: -service is only with -compose"},
		{[]string{"-src", "."}, "adopt: -src is only with -compose"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"adopt", "-dendrite-config", "/nonexistent/dendrite.yaml"}, tc.args...), &out, &out)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("adopt %q: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}

// TestAdoptFetchesWhatPeersHold: adopt fetches the documents that the
// server name serves today over HTTPS, as a remote server would (here from
// a stand-in Worker, through -resolve and -ca-file), keeps them, and its
// -dry-run prints the documents, their sources, the DNS steps and every
// step the real run asks for, writing nothing. With the Worker out of
// reach and dendrite.yaml naming only the server name, it refuses.
func TestAdoptFetchesWhatPeersHold(t *testing.T) {
	ca := localca.New(t)
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
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	os.WriteFile(root, ca.PEM(), 0o644)
	dendrite := filepath.Join(dir, "dendrite.yaml")
	os.WriteFile(dendrite, []byte("version: 2\nglobal:\n  server_name: example.com\n  well_known_server_name: example.com\n"), 0o600)
	out := filepath.Join(dir, "wellknownd")
	args := []string{"adopt", "-dendrite-config", dendrite, "-upstream", "http://127.0.0.1:8008", "-dir", out, "-tls", "internal", "-ca-file", root}

	var b bytes.Buffer
	if err := run(context.Background(), append(args, "-dry-run", "-resolve", "example.com:443:"+worker), &b, &b); err != nil {
		t.Fatalf("adopt: %v\n%s", err, b.String())
	}
	for _, want := range []string{
		"It serves:\n  https://example.com/.well-known/matrix/server\n    {\"m.server\":\"matrix.example.com:8448\"}\n    - m.server: as https://example.com/.well-known/matrix/server serves it today (remote servers have it cached)\n    - the same bytes as today\n",
		"  https://example.com/.well-known/matrix/client\n    {\"m.homeserver\":{\"base_url\":\"https://matrix.example.com:8448\"}}\n    - base_url: as https://example.com/.well-known/matrix/client serves it today (clients that logged in keep it)\n    - the same bytes as today\n",
		`global.well_known_server_name: is "example.com", but wellknownd answers /.well-known/matrix/server with "matrix.example.com:8448"`,
		"the federation port 8448 serves the client API too",
		"\nIn DNS:\n  - point example.com and matrix.example.com",
		"\nFirst, as root:\n  restart Dendrite listening only on 127.0.0.1:8008",
		"\nThen start it:\n  useradd --system", "  install -m 644 " + filepath.Join(out, "wellknownd.service"),
		"\nTo go back to how it was:\n  systemctl disable --now wellknownd",
		"\nNothing was written (-dry-run).\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("adopt -dry-run's output lacks %q:\n%s", want, b.String())
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("-dry-run wrote %s", out)
	}

	b.Reset()
	err := run(context.Background(), append(args, "-resolve", "example.com:443:"+freeport.Addr(t)), &b, &b)
	if err == nil || !strings.Contains(err.Error(), `global.well_known_server_name: is "example.com", the server name itself`) ||
		!strings.Contains(err.Error(), "https://example.com/.well-known/matrix/server: fetching it failed") || !strings.Contains(err.Error(), "-delegate HOST[:PORT]") {
		t.Errorf("adopt with the documents out of reach: %v\n%s", err, b.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused adopt wrote %s", out)
	}
}
