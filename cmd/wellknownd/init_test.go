package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/wellknownd/wellknownd/internal/dendriteadmin"
	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/localca"
)

// TestInitBoots: "wellknownd init" writes a deployment whose dendrite.yaml
// and key the real Dendrite starts with, supervised by wellknownd started
// from the generated wellknownd.yaml; the server's signing key, served
// through the edge, is the generated one and signs correctly.
func TestInitBoots(t *testing.T) {
	dir := t.TempDir()
	dendAddr := freeport.Addr(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"init", "-server-name", "example.com", "-delegate", "matrix.example.com",
		"-dir", dir, "-dendrite-bin", filepath.Join(dendritetest.Binaries(t), "dendrite"), "-dendrite-addr", dendAddr}, &out, &out)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out.String())
	}
	for _, f := range []string{"wellknownd.yaml", "dendrite/dendrite.yaml", "dendrite/matrix_key.pem", "wellknownd.service",
		"compose/docker-compose.yml", "compose/dendrite.yaml", "compose/wellknownd.yaml", "compose/postgres_password.secret"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("init did not write %s: %v", f, err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "dendrite/matrix_key.pem")); st.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode %v, want 0600", st.Mode().Perm())
	}
	// Never overwrite without -force.
	key1, _ := os.ReadFile(filepath.Join(dir, "dendrite/matrix_key.pem"))
	err = run(context.Background(), []string{"init", "-server-name", "example.com", "-dir", dir}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "nothing was written (use -force to overwrite)") {
		t.Fatalf("second init: %v", err)
	}
	if key2, _ := os.ReadFile(filepath.Join(dir, "dendrite/matrix_key.pem")); !bytes.Equal(key1, key2) {
		t.Fatal("the signing key was overwritten")
	}
	// The generated config validates as it is.
	cfgPath := filepath.Join(dir, "wellknownd.yaml")
	out.Reset()
	if err := run(context.Background(), []string{"validate", "-config", cfgPath}, &out, &out); err != nil {
		t.Fatalf("validate the generated config: %v\n%s", err, out.String())
	}

	// Boot it. Only the listeners change: this machine has neither ports
	// 80/443 nor a public CA, so they go to free loopback ports, in plain HTTP.
	generated, _ := os.ReadFile(cfgPath)
	cfg := regexp.MustCompile(`(?s)listen:.*?\ntls:\n(  .*?\n)*`).ReplaceAllString(string(generated),
		"listen: {http: \"127.0.0.1:0\", https: \"\", federation: \"\", admin: \"127.0.0.1:0\"}\ntls: {mode: \"off\"}\n")
	if !strings.Contains(cfg, "supervise:") || !strings.Contains(cfg, "server_name: \"example.com\"") || strings.Contains(cfg, "acme") {
		t.Fatalf("edited config:\n%s", cfg)
	}
	d := startDaemon(t, cfg, "http", "admin")
	d.waitStatus("generated Dendrite ready", 120*time.Second, func(s statusDoc) bool { return s.UpstreamReady })

	resp := d.do("GET", "http", "matrix.example.com", "/_matrix/key/v2/server")
	body := readBody(t, resp)
	var keys struct {
		ServerName string `json:"server_name"`
		VerifyKeys map[string]struct {
			Key string `json:"key"`
		} `json:"verify_keys"`
	}
	if err := json.Unmarshal([]byte(body), &keys); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/_matrix/key/v2/server: %d %s", resp.StatusCode, body)
	}
	block, _ := pem.Decode(key1)
	keyID := block.Headers["Key-ID"]
	want := ed25519.NewKeyFromSeed(block.Bytes).Public().(ed25519.PublicKey)
	served, ok := keys.VerifyKeys[keyID]
	if keys.ServerName != "example.com" || !ok {
		t.Fatalf("served keys %+v, want %s for example.com", keys, keyID)
	}
	if got, _ := base64.RawStdEncoding.DecodeString(served.Key); !bytes.Equal(got, want) {
		t.Fatalf("served public key %s is not the generated key's", served.Key)
	}
	if err := gomatrixserverlib.VerifyJSON("example.com", gomatrixserverlib.KeyID(keyID), want, []byte(body)); err != nil {
		t.Fatalf("the key response is not signed by the generated key: %v", err)
	}

	// The generated registration secret works (shared-secret registration).
	den, _ := os.ReadFile(filepath.Join(dir, "dendrite/dendrite.yaml"))
	m := regexp.MustCompile(`registration_shared_secret: "([^"]+)"`).FindSubmatch(den)
	if m == nil {
		t.Fatal("no registration secret in dendrite.yaml")
	}
	if _, err := dendriteadmin.Register(context.Background(), "http://"+dendAddr, "example.com", string(m[1]), "admin", "a long password", true); err != nil {
		t.Fatalf("shared-secret registration with the generated secret: %v", err)
	}
}

// TestInitForceKeepsIdentities: "init -force" rewrites the deployment but
// keeps the signing key (the server's identity in federation), the
// registration secret and the database password that a running Dendrite
// and a live database already hold; a file where the key should be that
// is not a key stops it before anything is written.
func TestInitForceKeepsIdentities(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	initArgs := []string{"init", "-server-name", "example.com", "-delegate", "matrix.example.com", "-dir", dir, "-dendrite-bin", "/bin/true"}
	if err := run(context.Background(), initArgs, &out, &out); err != nil {
		t.Fatalf("init: %v\n%s", err, out.String())
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	secretRE := regexp.MustCompile(`registration_shared_secret: "([^"]+)"`)
	key, secret, password := read("dendrite/matrix_key.pem"), secretRE.FindStringSubmatch(read("dendrite/dendrite.yaml"))[1], read("compose/postgres_password.secret")
	// Something the operator changed, which -force puts back.
	os.WriteFile(filepath.Join(dir, "wellknownd.yaml"), []byte("broken: [\n"), 0o644)

	out.Reset()
	if err := run(context.Background(), append(initArgs, "-force"), &out, &out); err != nil {
		t.Fatalf("init -force: %v\n%s", err, out.String())
	}
	if read("dendrite/matrix_key.pem") != key {
		t.Fatal("init -force replaced the signing key")
	}
	for _, p := range []string{"dendrite/dendrite.yaml", "compose/dendrite.yaml"} {
		if got := secretRE.FindStringSubmatch(read(p))[1]; got != secret {
			t.Errorf("%s: registration secret replaced", p)
		}
		if !strings.Contains(read(p), "postgres://dendrite:"+strings.TrimSpace(password)+"@") && p == "compose/dendrite.yaml" {
			t.Errorf("%s: database password replaced", p)
		}
	}
	if read("compose/postgres_password.secret") != password {
		t.Error("the database password secret was replaced")
	}
	if !strings.Contains(read("wellknownd.yaml"), "server_name:") {
		t.Error("init -force did not rewrite wellknownd.yaml")
	}
	if !strings.Contains(out.String(), "kept the signing key ed25519:") {
		t.Errorf("init -force did not say it kept the key:\n%s", out.String())
	}

	// Not a key where the key goes: nothing is written.
	os.WriteFile(filepath.Join(dir, "dendrite/matrix_key.pem"), []byte("garbage"), 0o600)
	os.WriteFile(filepath.Join(dir, "wellknownd.yaml"), []byte("left alone\n"), 0o644)
	err := run(context.Background(), append(initArgs, "-force"), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "is not a Matrix signing key") || read("wellknownd.yaml") != "left alone\n" {
		t.Fatalf("init -force over a broken key: %v", err)
	}
}

// TestInitTLSModes: init never writes a configuration that its own
// validate rejects. Names no public CA can issue for get tls.mode internal
// unless -tls says otherwise, -tls acme for them is refused before
// anything is written, and -tls files writes the certificate's paths.
func TestInitTLSModes(t *testing.T) {
	validate := func(dir string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), []string{"validate", "-config", filepath.Join(dir, "wellknownd.yaml")}, &out, &out); err != nil {
			t.Fatalf("validate what init wrote: %v\n%s", err, out.String())
		}
		cfg, _ := os.ReadFile(filepath.Join(dir, "wellknownd.yaml"))
		return string(cfg)
	}
	initIn := func(dir string, args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"init", "-server-name", "example.test", "-delegate", "matrix.example.test",
			"-dir", dir, "-dendrite-bin", "/bin/true"}, args...), &out, &out)
		return out.String(), err
	}

	dir := filepath.Join(t.TempDir(), "d")
	out, err := initIn(dir)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if cfg := validate(dir); !strings.Contains(cfg, "  mode: internal") || !strings.Contains(out, "note: tls.mode is internal") {
		t.Errorf("init for .test names:\n%s\n%s", out, cfg)
	}

	dir = filepath.Join(t.TempDir(), "d")
	if out, err := initIn(dir, "-tls", "acme"); err == nil || !strings.Contains(err.Error(), `"example.test" cannot get a certificate from a public CA`) {
		t.Errorf("init -tls acme for .test names: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("a refused init wrote %s", dir)
	}

	ca := localca.New(t)
	c := ca.Issue(t, "example.test", "matrix.example.test")
	key, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	certFile, keyFile := filepath.Join(t.TempDir(), "cert.pem"), filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	if out, err := initIn(dir, "-tls", "files", "-cert-file", certFile, "-key-file", keyFile); err != nil {
		t.Fatalf("init -tls files: %v\n%s", err, out)
	}
	if cfg := validate(dir); !strings.Contains(cfg, "  mode: files") || !strings.Contains(cfg, `cert_file: "`+certFile+`"`) {
		t.Errorf("init -tls files:\n%s", cfg)
	}
}
