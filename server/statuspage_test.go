package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// certExpiringIn writes a self-signed certificate for names that expires
// in left, and its key.
func certExpiringIn(t *testing.T, dir string, left time.Duration, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Status Test CA"}, DNSNames: names,
		NotBefore: time.Now().Add(-88 * 24 * time.Hour), NotAfter: time.Now().Add(left),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "key.pem")
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

// statusJSON is the admin listener's /status as a client reads it.
type statusJSON struct {
	UpstreamReady bool     `json:"upstream_ready"`
	Ready         bool     `json:"ready"`
	Problems      []string `json:"problems"`
	Certificates  []struct {
		Name, State string
		NotAfter    string  `json:"not_after"`
		RenewalDue  *string `json:"renewal_due"`
	} `json:"certificates"`
	Supervised []struct {
		Name, State string
		PID         int `json:"pid"`
	} `json:"supervised"`
	Listeners []struct{ Name, Addr string } `json:"listeners"`
	SelfCheck *struct {
		Running bool `json:"running"`
		Checks  []struct {
			Name    string `json:"name"`
			OK      bool   `json:"ok"`
			Skipped bool   `json:"skipped"`
		} `json:"checks"`
	} `json:"self_check"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// chromium loads url in headless Chromium, as an operator's browser
// would, and returns the DOM once its script has run and what it wrote to
// its console: errors (a script that throws, a Content-Security-Policy
// violation) and anything else, which this page never writes.
func chromium(t *testing.T, url string) (dom string, console []string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (./test installs Debian's chromium)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0",
		// Virtual time runs until the page's fetches are answered and
		// rendered (the page then waits 10 s to refresh; the budget ends
		// before that).
		"--virtual-time-budget=5000", "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") {
			console = append(console, l)
		}
	}
	return string(out), console
}

// attr finds the element whose opening tag has marker (an id or a
// data-name) and returns its attribute name's value.
func attr(t *testing.T, dom, marker, name string) string {
	t.Helper()
	tag := regexp.MustCompile(`<[a-z]+[^>]*` + regexp.QuoteMeta(marker) + `[^>]*>`).FindString(dom)
	if tag == "" {
		t.Fatalf("no element with %s in the page:\n%s", marker, dom)
	}
	m := regexp.MustCompile(`\s` + regexp.QuoteMeta(name) + `="([^"]*)"`).FindStringSubmatch(tag)
	if m == nil {
		t.Fatalf("%s has no %s: %s", marker, name, tag)
	}
	return m[1]
}

// TestStatusPageInChromium: the page an operator opens on the admin
// listener loads in a real browser with no console error under its strict
// Content-Security-Policy, shows the values /status has, and shows a
// certificate two days from expiry and a homeserver process that keeps
// exiting as the problems they are.
func TestStatusPageInChromium(t *testing.T) {
	up := newRecorder(t)
	certFile, keyFile := certExpiringIn(t, t.TempDir(), 48*time.Hour, "example.com", "matrix.example.com")
	cfg := edgeconf.New(edgeconf.Listen("127.0.0.1:0", "127.0.0.1:0", "", "127.0.0.1:0"),
		edgeconf.Files(certFile, keyFile), edgeconf.Upstream(up.URL)) + `supervise:
  - name: homeserver
    command: ["sh", "-c", "exit 3"]
    ready: {tcp: "` + strings.TrimPrefix(up.URL, "http://") + `"}
`
	// The homeserver never gets ready: the self-check reports that after
	// a second rather than two minutes.
	e := startEdge(t, cfg, onListeners, withOptions(WithSelfCheckReadyWait(time.Second)))
	var admin, public, https string
	wait.Until(t, "the listeners", 20*time.Second, func() error {
		for _, l := range derefListeners(e.srv) {
			switch l.Name {
			case "admin":
				admin = "http://" + l.Addr
			case "http":
				public = "http://" + l.Addr
			case "https":
				https = l.Addr
			}
		}
		if admin == "" || public == "" || https == "" {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	var st statusJSON
	wait.Until(t, "the homeserver process to have exited", 30*time.Second, func() error {
		getJSON(t, admin+"/status", &st)
		if len(st.Supervised) != 1 || st.Supervised[0].State != "backoff" {
			return fmt.Errorf("supervised %+v", st.Supervised)
		}
		return nil
	})
	// Traffic for the charts: documents, and requests the unready
	// homeserver's gate answers 503.
	for range 3 {
		resp, err := http.Get(public + "/.well-known/matrix/server")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	pemBytes, _ := os.ReadFile(certFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", https)
		}}}
	resp, err := client.Get("https://matrix.example.com/_matrix/client/versions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("the client API with the homeserver down: %s, want 503", resp.Status)
	}

	// The self-check's first run, whose verdicts the page must show.
	wait.Until(t, "the self-check's first run", 3*time.Minute, func() error {
		getJSON(t, admin+"/status", &st)
		if st.SelfCheck == nil || st.SelfCheck.Running || len(st.SelfCheck.Checks) == 0 {
			return fmt.Errorf("self_check %+v", st.SelfCheck)
		}
		return nil
	})
	dom, console := chromium(t, admin+"/")
	if len(console) > 0 {
		t.Errorf("the page wrote to the browser's console:\n%s", strings.Join(console, "\n"))
	}
	if got := attr(t, dom, "data-loaded=", "data-loaded"); got != "1" {
		t.Fatalf("the page did not render the status:\n%s", dom)
	}
	getJSON(t, admin+"/status", &st)
	if len(st.Certificates) != 2 {
		t.Fatalf("/status certificates: %+v", st.Certificates)
	}
	for _, c := range st.Certificates {
		if c.State != "expiring" || c.RenewalDue != nil {
			t.Errorf("/status: certificate %+v, want expiring, renewed by its files", c)
		}
		row := `data-name="` + c.Name + `" data-state="`
		if got := attr(t, dom, row, "data-not-after"); got != c.NotAfter {
			t.Errorf("page: %s expires %q, /status says %q", c.Name, got, c.NotAfter)
		}
		if got := attr(t, dom, row, "data-state"); got != "expiring" {
			t.Errorf("page: %s's certificate is %q, want expiring", c.Name, got)
		}
	}
	if !strings.Contains(dom, "expiring soon") {
		t.Errorf("the page does not say the certificate is expiring soon:\n%s", dom)
	}
	if got := attr(t, dom, `id="ready"`, "data-ready"); got != fmt.Sprint(st.UpstreamReady) || got != "false" {
		t.Errorf("page readiness %q, /status upstream_ready %v", got, st.UpstreamReady)
	}
	if got := attr(t, dom, `data-name="homeserver"`, "data-down"); got != "true" {
		t.Errorf("page: the exited homeserver process is down=%q", got)
	}
	if !strings.Contains(dom, "last exit status 3") || !strings.Contains(dom, "status 3, ") {
		t.Errorf("the page does not say how the homeserver exited:\n%s", dom)
	}
	if got := attr(t, dom, `id="summary"`, "data-ok"); got != "false" {
		t.Errorf("page summary ok=%q with problems %q", got, st.Problems)
	}
	if got := attr(t, dom, `id="selfcheck-run"`, "data-state"); got != "run" {
		t.Errorf("page self-check %q, want run", got)
	}
	for _, c := range st.SelfCheck.Checks {
		want := map[bool]string{true: "ok", false: "failed"}[c.OK]
		if c.Skipped {
			want = "skipped"
		}
		if got := attr(t, dom, `data-name="`+c.Name+`" data-verdict="`, "data-verdict"); got != want {
			t.Errorf("page: self-check %s is %q, /status says %q", c.Name, got, want)
		}
	}
	var hist historyDoc
	getJSON(t, admin+"/status/history", &hist)
	var total, errs uint32
	for i := range hist.Requests {
		total += hist.Requests[i]
		errs += hist.Errors[i]
	}
	if total < 4 || errs < 1 {
		t.Errorf("/status/history counted %d requests, %d errors; sent 4, one answered 503", total, errs)
	}
	if got := attr(t, dom, `id="req-chart"`, "data-total"); got != fmt.Sprint(total) {
		t.Errorf("page charts %s requests, /status/history %d", got, total)
	}
	if got := attr(t, dom, `id="err-chart"`, "data-total"); got != fmt.Sprint(errs) {
		t.Errorf("page charts %s errors, /status/history %d", got, errs)
	}
}

func derefListeners(s *Server) []listenerStatus {
	if b := s.bound.Load(); b != nil {
		return *b
	}
	return nil
}

// TestStatusPageIsSelfContainedAndStrict: the page is one small document
// that loads nothing from elsewhere, is never cached, and runs only the
// script and style it carries (their hashes are the policy).
func TestStatusPageIsSelfContainedAndStrict(t *testing.T) {
	e := startEdge(t, edgeconf.New(), withAdmin)
	resp, err := http.Get(e.admin.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
	if len(body) > 12<<10 {
		t.Errorf("the page is %d bytes; keep it a few KiB", len(body))
	}
	if regexp.MustCompile(`(src|href)="(https?:)?//`).Match(body) {
		t.Errorf("the page loads something from elsewhere")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllSubmatch(body, -1)
		if len(m) != 1 {
			t.Fatalf("%d inline %s blocks", len(m), tag)
		}
		sum := sha256.Sum256(m[0][1])
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q is not strict", csp)
	}
}

// TestStatusHasNoSecrets: what the page and `wellknownd status` show of the
// configuration leaves out passwords in URLs and supervised processes'
// environments and commands.
func TestStatusHasNoSecrets(t *testing.T) {
	const secret = "hunter2-s3cret"
	up := newRecorder(t)
	cfg := edgeconf.New(edgeconf.Upstream(strings.Replace(up.URL, "http://", "http://synapse:"+secret+"@", 1))) + `supervise:
  - name: homeserver
    command: ["sleep", "60", "` + secret + `"]
    env: {REGISTRATION_SECRET: "` + secret + `"}
    ready: {tcp: "` + strings.TrimPrefix(up.URL, "http://") + `"}
`
	e := startEdge(t, cfg, withAdmin)
	for _, path := range []string{"/", "/status", "/status/history"} {
		resp, err := http.Get(e.admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), secret) {
			t.Errorf("%s shows the secret:\n%s", path, body)
		}
		if path == "/status" && !strings.Contains(string(body), `"upstream": "http://synapse:xxxxx@`) {
			t.Errorf("/status does not summarise the upstream:\n%s", body)
		}
	}
}
