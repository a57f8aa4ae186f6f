package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/deploytest"
	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestComposeDeployment builds the image from the repository's Dockerfile,
// writes a deployment with init, starts it with docker compose as the
// README says, and uses it through the published ports as a client and a
// remote server would; then restarts it and takes it down and up again,
// and checks that nothing was lost.
func TestComposeDeployment(t *testing.T) {
	t.Parallel()
	start := time.Now()
	d := deploytest.StartDocker(t)
	d.StandIns(dendritetest.Binaries(t))
	t.Logf("engine and stand-in images ready after %v", time.Since(start).Round(time.Second))

	buildImage(t, d)

	// The deployment, as init writes it; the local CA stands in for Let's
	// Encrypt, which is not reachable here.
	bin := deploytest.Build(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "matrix")
	if out, err := exec.Command(bin, "init", "-server-name", "example.com", "-delegate", "matrix.example.com",
		"-dir", dir, "-src", deploytest.Root()).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	compose := filepath.Join(dir, "compose")
	if out, err := exec.Command("sh", "-c", internalTLS+filepath.Join(compose, "wellknownd.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The published ports, on loopback and free ports: an override file,
	// as an operator would add one.
	https := freeport.Port(t)
	override := fmt.Sprintf("services:\n  wellknownd:\n    ports: !override\n      - \"127.0.0.1:%d:80\"\n      - \"127.0.0.1:%d:443\"\n      - \"127.0.0.1:%d:8448\"\n",
		freeport.Port(t), https, freeport.Port(t))
	if err := os.WriteFile(filepath.Join(compose, "docker-compose.override.yml"), []byte(override), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg := d.Run(compose, "compose", "config"); !strings.Contains(cfg, "context: "+deploytest.Root()) {
		t.Errorf("compose does not build from the clone init was given:\n%s", cfg)
	}
	up := func() {
		t.Helper()
		upStart := time.Now()
		if out, err := d.Try(compose, "compose", "up", "-d", "--wait", "--wait-timeout", "240"); err != nil {
			logs, _ := d.Try(compose, "compose", "logs", "--no-color", "--tail", "40")
			t.Fatalf("%v\n%s", err, logs+out)
		}
		t.Logf("compose up, healthy after %v", time.Since(upStart).Round(time.Second))
	}
	up()

	rootFile := filepath.Join(t.TempDir(), "root.crt")
	d.Run(compose, "compose", "cp", "wellknownd:/var/lib/wellknownd/internal-ca/root.crt", rootFile)
	rootPEM, _ := os.ReadFile(rootFile)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("no root certificate in %s", rootFile)
	}
	edge := "127.0.0.1:" + strconv.Itoa(https)
	client := dnstest.PinnedClient(roots, edge)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := get("https://example.com/.well-known/matrix/server"); code != 200 || body != `{"m.server":"matrix.example.com:443"}` {
		t.Fatalf("server document: %d %s", code, body)
	}
	if code, body := get("https://matrix.example.com/_matrix/client/versions"); code != 200 || !strings.Contains(body, `"versions"`) {
		t.Fatalf("client versions: %d %s", code, body)
	}

	// The first account, the documented way.
	const password = "a long compose password"
	create := d.Command(compose, "compose", "exec", "-T", "dendrite", "create-account", "-config", "/etc/dendrite/dendrite.yaml",
		"-username", "alice", "-admin", "-passwordstdin")
	create.Stdin = strings.NewReader(password + "\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("create-account: %v\n%s", err, out)
	}

	keyPEM, _ := os.ReadFile(filepath.Join(dir, "dendrite", "matrix_key.pem"))
	block, _ := pem.Decode(keyPEM)
	keyID := block.Headers["Key-ID"]
	fingerprint := func() [32]byte {
		conn, err := tls.Dial("tcp", edge, &tls.Config{ServerName: "matrix.example.com", RootCAs: roots})
		if err != nil {
			t.Fatalf("TLS: %v", err)
		}
		defer conn.Close()
		return sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	}
	cert := fingerprint()
	media := make([]byte, 5<<20)
	rand.Read(media)

	// What must hold on every start: the account logs in through the edge,
	// media round-trips, the signing key and the certificate are the ones
	// from before, "wellknownd check" passes.
	verify := func(stage string, upload bool) {
		t.Helper()
		ctx := context.Background()
		cli, err := mautrix.NewClient("https://matrix.example.com", "", "")
		if err != nil {
			t.Fatal(err)
		}
		cli.Client = client
		if _, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: password, StoreCredentials: true}); err != nil {
			t.Fatalf("%s: login through the edge: %v", stage, err)
		}
		if upload {
			up, err := cli.UploadMedia(ctx, mautrix.ReqUploadMedia{Content: bytes.NewReader(media), ContentLength: int64(len(media)),
				ContentType: "application/octet-stream", FileName: "5mib.bin"})
			if err != nil {
				t.Fatalf("%s: upload 5 MiB: %v", stage, err)
			}
			resp, err := cli.Download(ctx, up.ContentURI)
			if err != nil {
				t.Fatalf("%s: download: %v", stage, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, media) {
				t.Fatalf("%s: 5 MiB came back as %d different bytes", stage, len(got))
			}
		}
		_, body := get("https://matrix.example.com/_matrix/key/v2/server")
		var keys struct {
			VerifyKeys map[string]any `json:"verify_keys"`
		}
		json.Unmarshal([]byte(body), &keys)
		if _, ok := keys.VerifyKeys[keyID]; !ok || len(keys.VerifyKeys) != 1 {
			t.Fatalf("%s: signing keys %v, want only %s (the generated key)", stage, keys.VerifyKeys, keyID)
		}
		if fingerprint() != cert {
			t.Fatalf("%s: the certificate changed", stage)
		}
		check := exec.Command(bin, "check", "-ca-file", rootFile, "-resolve", "example.com:443:"+edge, "-resolve", "matrix.example.com:443:"+edge, "example.com")
		if out, err := check.CombinedOutput(); err != nil {
			t.Fatalf("%s: wellknownd check: %v\n%s", stage, err, out)
		}
	}
	verify("first start", true)

	// Metrics from the compose network, without reload or the admin listener.
	metrics := d.Run(compose, "compose", "exec", "-T", "dendrite", "curl", "-fsS", "http://wellknownd:9100/metrics")
	if !strings.Contains(metrics, `wellknownd_build_info{version="v0.0.0-deploytest"} 1`) {
		t.Errorf("metrics from the compose network lack build_info:\n%.500s", metrics)
	}
	if code := strings.TrimSpace(d.Run(compose, "compose", "exec", "-T", "dendrite", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
		"-X", "POST", "http://wellknownd:9100/reload")); code != "404" && code != "405" {
		t.Errorf("POST /reload on the metrics listener answered %s", code)
	}
	if out, err := d.Try(compose, "compose", "exec", "-T", "dendrite", "curl", "-sS", "--max-time", "5", "http://wellknownd:9090/status"); err == nil {
		t.Errorf("the admin listener is reachable from the compose network:\n%s", out)
	}

	// Reloading the configuration, both ways the README gives.
	if out := d.Run(compose, "compose", "exec", "-T", "wellknownd", "wellknownd", "reload", "-config", "/etc/wellknownd/wellknownd.yaml"); out != "reloaded\n" {
		t.Errorf("wellknownd reload in the container: %q", out)
	}
	d.Run(compose, "compose", "kill", "-s", "HUP", "wellknownd")
	if err := wait.For(10*time.Second, func() error {
		if n := strings.Count(d.Run(compose, "compose", "logs", "--no-color", "wellknownd"), "msg=reloaded"); n != 2 {
			return fmt.Errorf("%d reloads logged", n)
		}
		return nil
	}); err != nil {
		t.Errorf("docker compose kill -s HUP: %v", err)
	}

	d.Run(compose, "compose", "restart")
	up()
	verify("after restart", false)

	d.Run(compose, "compose", "down")
	up()
	verify("after down and up", true)
	t.Logf("compose deployment test took %v", time.Since(start).Round(time.Second))
}

// buildImage builds wellknownd:latest from the repository's Dockerfile in
// d, and checks what the image says about itself.
func buildImage(t *testing.T, d *deploytest.Docker) {
	t.Helper()
	// From the repository's Dockerfile. --network host: the
	// module proxy is reached through this machine's network.
	buildStart := time.Now()
	d.Run(deploytest.Root(), "build", "--network", "host", "--build-arg", "VERSION=v0.0.0-deploytest", "-t", "wellknownd:latest", ".")
	var image struct {
		Size   int64
		Config struct {
			User   string
			Labels map[string]string
		}
	}
	d.Inspect(&image, "wellknownd:latest")
	t.Logf("image built in %v: %.1f MB", time.Since(buildStart).Round(time.Second), float64(image.Size)/1e6)
	if image.Config.User != "nonroot:nonroot" || image.Config.Labels["org.opencontainers.image.version"] != "v0.0.0-deploytest" ||
		image.Config.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("image config: user %q, labels %v", image.Config.User, image.Config.Labels)
	}
	if v := d.Run("", "run", "--rm", "wellknownd:latest", "version"); !strings.HasPrefix(v, "wellknownd v0.0.0-deploytest ") {
		t.Errorf("wellknownd version in the image: %q", v)
	}
}
