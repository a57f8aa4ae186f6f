package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/wellknownd/wellknownd/fedcheck"
	"github.com/wellknownd/wellknownd/internal/testing/acmetest"
	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/localca"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// stack is Dendrite behind wellknownd with certificates from Pebble:
// everything "wellknownd check" looks at, on loopback.
type stack struct {
	tlsAddr string
	caFile  string // Pebble's root and the local CA's
	local   *localca.CA
}

func startStack(t *testing.T) *stack {
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	pebble := acmetest.Start(t, httpPort, tlsPort)
	den := dendritetest.Start(t, dendritetest.Options{ServerName: "example.com"})
	cfg := edgeconf.New(
		edgeconf.Listen(fmt.Sprintf("127.0.0.1:%d", httpPort), fmt.Sprintf("127.0.0.1:%d", tlsPort), "", "127.0.0.1:0"),
		edgeconf.ACME(pebble.DirectoryURL, pebble.APIRootFile, t.TempDir()),
		edgeconf.Upstream(den.URL))
	startDaemon(t, cfg, "https")
	s := &stack{tlsAddr: fmt.Sprintf("127.0.0.1:%d", tlsPort), local: localca.New(t)}
	s.caFile = filepath.Join(t.TempDir(), "roots.pem")
	os.WriteFile(s.caFile, append(pebble.RootPEM(), s.local.PEM()...), 0o644)
	// Wait for both certificates.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pebble.RootPEM())
	for _, name := range []string{"example.com", "matrix.example.com"} {
		wait.Until(t, "a certificate for "+name, 60*time.Second, func() error {
			c, err := tls.Dial("tcp", s.tlsAddr, &tls.Config{ServerName: name, RootCAs: pool})
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	return s
}

// check runs "wellknownd check" with the given -resolve targets.
func (s *stack) check(t *testing.T, example, matrix string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"check", "-ca-file", s.caFile, "-timeout", "5s",
		"-resolve", "example.com:443:" + example, "-resolve", "matrix.example.com:443:" + matrix}, extra...)
	args = append(args, "example.com")
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), err
}

// failing returns the report line of the named check, which must fail.
func failing(t *testing.T, out, check string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "✗ "+check) {
			return line
		}
	}
	t.Fatalf("no failing %q check in:\n%s", check, out)
	return ""
}

func TestCheckRealStack(t *testing.T) {
	s := startStack(t)
	out, err := s.check(t, s.tlsAddr, s.tlsAddr)
	if err != nil {
		t.Fatalf("check of a correct deployment failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"✓ well-known server document: m.server is matrix.example.com:443; remote servers cache it for 4h0m0s",
		"✓ certificate at " + s.tlsAddr + " (matrix.example.com:443): names matrix.example.com",
		"✓ signing keys at " + s.tlsAddr + " (matrix.example.com:443): ed25519:",
		"✓ federation version at " + s.tlsAddr + " (matrix.example.com:443): Dendrite",
		"✓ well-known client document: base_url https://matrix.example.com, with CORS",
		"✓ client API versions:",
		"- well-known support document: none published",
		"federation: OK, client discovery: OK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// JSON: what the federation tester reports.
	js, err := s.check(t, s.tlsAddr, s.tlsAddr, "-json")
	if err != nil {
		t.Fatal(err)
	}
	var r fedcheck.Report
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	rep := r.ConnectionReports[s.tlsAddr]
	if !r.FederationOK || r.WellKnownResult.MServer != "matrix.example.com:443" || rep == nil || !rep.Checks.AllChecksOK ||
		rep.Cipher.Version == "" || len(rep.Certificates) == 0 || len(rep.Keys) == 0 || r.Version == nil || r.Version.Name != "Dendrite" {
		t.Fatalf("JSON report: %s", js)
	}

	t.Run("certificate for the wrong name", func(t *testing.T) {
		wrong := s.local.Serve(t, http.NotFoundHandler(), "matrix.example.org")
		out, err := s.check(t, s.tlsAddr, wrong)
		line := failing(t, out, "certificate at "+wrong+" (matrix.example.com:443)")
		if err == nil || !strings.HasSuffix(line, ": certificate names matrix.example.org, but m.server points to matrix.example.com") {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "    fix: get a certificate for matrix.example.com") {
			t.Fatalf("no fix:\n%s", out)
		}
	})

	t.Run("missing CORS on the client document", func(t *testing.T) {
		noCORS := s.local.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/.well-known/matrix/server":
				w.Write([]byte(`{"m.server":"matrix.example.com:443"}`))
			case "/.well-known/matrix/client":
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"m.homeserver":{"base_url":"https://matrix.example.com"}}`))
			default:
				http.NotFound(w, r)
			}
		}), "example.com")
		out, err := s.check(t, noCORS, s.tlsAddr)
		line := failing(t, out, "well-known client document")
		if err == nil || !strings.HasSuffix(line, ": it has no Access-Control-Allow-Origin header, so web clients such as Element cannot read it") {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "federation: OK, client discovery: FAILED") {
			t.Fatalf("verdict:\n%s", out)
		}
	})

	wellKnown := func(mServer string) string {
		return s.local.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			switch r.URL.Path {
			case "/.well-known/matrix/server":
				fmt.Fprintf(w, `{"m.server":%q}`, mServer)
			case "/.well-known/matrix/client":
				w.Write([]byte(`{"m.homeserver":{"base_url":"https://matrix.example.com"}}`))
			default:
				http.NotFound(w, r)
			}
		}), "example.com")
	}

	t.Run("m.server pointing at a closed port", func(t *testing.T) {
		closed := freeport.Addr(t)
		out, err := s.check(t, wellKnown("matrix.example.com:8449"), s.tlsAddr, "-resolve", "matrix.example.com:8449:"+closed)
		line := failing(t, out, "connection to "+closed+" (matrix.example.com:8449)")
		if err == nil || !strings.Contains(line, ": nothing answers there: ") || !strings.Contains(line, "connection refused") {
			t.Fatalf("%v\n%s", err, out)
		}
	})

	t.Run("scheme in m.server", func(t *testing.T) {
		out, err := s.check(t, wellKnown("https://matrix.example.com"), s.tlsAddr)
		line := failing(t, out, "well-known server document")
		if err == nil || !strings.HasSuffix(line, `: m.server "https://matrix.example.com" has a scheme ("https://"); a server name is host[:port], e.g. matrix.example.com`) {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "    fix: m.server is host[:port] only, e.g. matrix.example.com") {
			t.Fatalf("no fix:\n%s", out)
		}
	})

	// A federation endpoint that answers with keys as told.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	keyServer := func(validUntil time.Time, sign bool) string {
		return s.local.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/_matrix/key/v2/server":
				body, _ := json.Marshal(map[string]any{
					"server_name":     "example.com",
					"valid_until_ts":  validUntil.UnixMilli(),
					"verify_keys":     map[string]any{"ed25519:abc": map[string]string{"key": base64.RawStdEncoding.EncodeToString(pub)}},
					"old_verify_keys": map[string]any{},
				})
				if sign {
					body, _ = gomatrixserverlib.SignJSON("example.com", "ed25519:abc", priv, body)
				}
				w.Write(body)
			case "/_matrix/federation/v1/version":
				w.Write([]byte(`{"server":{"name":"Recorder","version":"1"}}`))
			default:
				http.NotFound(w, r)
			}
		}), "matrix.example.com")
	}

	t.Run("expired key response", func(t *testing.T) {
		addr := keyServer(time.Now().Add(-time.Hour), true)
		out, err := s.check(t, s.tlsAddr, addr)
		line := failing(t, out, "signing keys at "+addr+" (matrix.example.com:443)")
		if err == nil || !strings.Contains(line, ": valid_until_ts is in the past (") || !strings.HasSuffix(line, "): remote servers will not use these keys") {
			t.Fatalf("%v\n%s", err, out)
		}
	})

	t.Run("unsigned key response", func(t *testing.T) {
		addr := keyServer(time.Now().Add(time.Hour), false)
		out, err := s.check(t, s.tlsAddr, addr)
		line := failing(t, out, "signing keys at "+addr+" (matrix.example.com:443)")
		if err == nil || !strings.HasSuffix(line, ": the key response is not signed by the keys it offers") {
			t.Fatalf("%v\n%s", err, out)
		}
		// The same server, signing: its keys pass (it is no client API,
		// so client discovery fails, and only that).
		good := keyServer(time.Now().Add(time.Hour), true)
		out, _ = s.check(t, s.tlsAddr, good)
		if !strings.Contains(out, "✓ signing keys at "+good+" (matrix.example.com:443): ed25519:abc for example.com, signed") ||
			!strings.Contains(out, "federation: OK") {
			t.Fatalf("a correctly signing key server fails:\n%s", out)
		}
	})
}
