package certs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/knottest"
)

// txtValue is the dns-01 record value for a key authorization.
func txtValue(keyAuth string) string {
	h := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// TestRFC2136Updates drives provider rfc2136 against Knot: TSIG-signed
// updates write and delete the record, a wrong key is refused, and two
// challenges of one name (example.test and *.example.test) take turns
// rather than deleting each other's record.
func TestRFC2136Updates(t *testing.T) {
	knot := knottest.Start(t, "example.test")
	// RFC 2136 asks for a gap between two challenges of one name (lego's
	// default 60 s); 2 s here.
	t.Setenv("DNSUPDATE_SEQUENCE_INTERVAL", "2")
	dnsCfg := config.DNS{
		Provider:  "rfc2136",
		RFC2136:   config.RFC2136{Server: knot.Addr, TSIGKeyFile: knot.KeyFile},
		Resolvers: []string{knot.Addr},
	}
	d, err := newDNS01(dnsCfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	solver := d.solver.(*legoSolver)
	if d.manager != nil {
		t.Fatal("a lego provider offered a DNSManager for ZeroSSL's CNAME validation")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const recordName = "_acme-challenge.example.test"
	base := acme.Challenge{Identifier: acme.Identifier{Type: "dns", Value: "example.test"}, Token: "tok-base", KeyAuthorization: "tok-base.thumb"}
	// The authorization of *.example.test names example.test too.
	wild := acme.Challenge{Identifier: acme.Identifier{Type: "dns", Value: "example.test"}, Token: "tok-wild", KeyAuthorization: "tok-wild.thumb"}

	// Why the solver serializes: lego's RFC 2136 provider replaces the
	// record set, so the second Present deletes the first's record.
	if err := solver.provider.Present(ctx, "example.test", base.Token, base.KeyAuthorization); err != nil {
		t.Fatal(err)
	}
	if err := solver.provider.Present(ctx, "example.test", wild.Token, wild.KeyAuthorization); err != nil {
		t.Fatal(err)
	}
	if got := knot.TXT(t, recordName); !slices.Equal(got, []string{txtValue(wild.KeyAuthorization)}) {
		t.Fatalf("after two raw Presents Knot has %v; the premise of the per-name turn no longer holds", got)
	}
	solver.provider.CleanUp(ctx, "example.test", wild.Token, wild.KeyAuthorization)
	if got := knot.TXT(t, recordName); len(got) != 0 {
		t.Fatalf("after CleanUp Knot still has %v", got)
	}

	// Through the solver: the second challenge waits for the first.
	if err := solver.Present(ctx, base); err != nil {
		t.Fatal(err)
	}
	if err := solver.Wait(ctx, base); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- solver.Present(ctx, wild) }()
	select {
	case err := <-second:
		t.Fatalf("the second challenge of the name was presented while the first held it (err %v)", err)
	case <-time.After(time.Second):
	}
	if got := knot.TXT(t, recordName); !slices.Equal(got, []string{txtValue(base.KeyAuthorization)}) {
		t.Fatalf("while the first challenge holds the name, Knot has %v", got)
	}
	if solver.gap != 2*time.Second {
		t.Fatalf("gap %s, want DNSUPDATE_SEQUENCE_INTERVAL's 2s", solver.gap)
	}
	// Taken before CleanUp, which starts the gap before it returns: a
	// test goroutine slow to resume would otherwise see a shorter wait.
	cleaned := time.Now()
	if err := solver.CleanUp(ctx, base); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(cleaned); waited < solver.gap {
			t.Fatalf("the second challenge went ahead %s after the first's cleanup began; the gap is %s", waited, solver.gap)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second challenge did not go ahead after the first was cleaned up")
	}
	if err := solver.Wait(ctx, wild); err != nil {
		t.Fatal(err)
	}
	if got := knot.TXT(t, recordName); !slices.Equal(got, []string{txtValue(wild.KeyAuthorization)}) {
		t.Fatalf("second challenge: Knot has %v", got)
	}
	// A CleanUp of a challenge that holds nothing frees nothing.
	solver.release(strings.ToLower(base.DNS01TXTRecordName()), base.Token)
	if solver.held[recordName] == nil {
		t.Fatal("a stale release freed another challenge's hold")
	}
	if err := solver.CleanUp(ctx, wild); err != nil {
		t.Fatal(err)
	}
	if got := knot.TXT(t, recordName); len(got) != 0 {
		t.Fatalf("after the last CleanUp Knot still has %v", got)
	}
	// Knot takes no unsigned update, so the ones above were signed.
	unsigned := new(dns.Msg).SetUpdate("example.test.")
	rr, _ := dns.NewRR(recordName + ". 60 IN TXT unsigned")
	unsigned.Insert([]dns.RR{rr})
	if r, err := dns.Exchange(unsigned, knot.Addr); err != nil || r.Rcode == dns.RcodeSuccess {
		t.Fatalf("Knot accepted an unsigned update (err %v); the test's ACL is not the one a user runs", err)
	}

	// A wrong secret: Knot refuses, and the error says so.
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte(`key "wellknownd-test" { algorithm hmac-sha256; secret "`+base64.StdEncoding.EncodeToString(make([]byte, 32))+`"; };`), 0o600)
	dnsCfg.RFC2136.TSIGKeyFile = bad
	d, err = newDNS01(dnsCfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = d.solver.Present(ctx, base)
	// Knot answers NOTAUTH with TSIG error BADSIG, which miekg/dns
	// reports as a failed authentication.
	if err == nil || !strings.Contains(err.Error(), "bad authentication") {
		t.Fatalf("Present with a wrong TSIG secret: %v, want a refusal", err)
	}
	if got := knot.TXT(t, recordName); len(got) != 0 {
		t.Fatalf("an update with a wrong key changed the zone: %v", got)
	}
}

// TestTokenProviderCredentials: a token provider's secret comes from
// api_token_file, credentials_file or the environment and reaches the
// provider's API. DigitalOcean's API cannot be reached from a test, so a
// local server stands in for it (lego reads its address from
// DO_API_URL); Knot answers the zone lookup that precedes the write.
func TestTokenProviderCredentials(t *testing.T) {
	knot := knottest.Start(t, "example.test")
	type call struct{ method, path, auth, body string }
	calls := make(chan call, 4)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls <- call{r.Method, r.URL.Path, r.Header.Get("Authorization"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"domain_record":{"id":7,"type":"TXT"}}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(api.Close)
	t.Setenv("DO_API_URL", api.URL)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("dop_v1_from_token_file\n"), 0o600)
	credsFile := filepath.Join(dir, "dns.env")
	os.WriteFile(credsFile, []byte("# DigitalOcean\nDO_AUTH_TOKEN=\"dop_v1_from_credentials_file\"\n"), 0o600)
	chal := acme.Challenge{Identifier: acme.Identifier{Type: "dns", Value: "matrix.example.test"}, Token: "tok", KeyAuthorization: "tok.thumb"}
	for _, c := range []struct {
		name   string
		dns    config.DNS
		env    string
		bearer string
	}{
		{"api_token_file", config.DNS{APITokenFile: tokenFile}, "dop_v1_from_env", "dop_v1_from_token_file"},
		{"credentials_file", config.DNS{CredentialsFile: credsFile}, "dop_v1_from_env", "dop_v1_from_credentials_file"},
		{"environment", config.DNS{}, "dop_v1_from_env", "dop_v1_from_env"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DO_AUTH_TOKEN", c.env)
			c.dns.Provider, c.dns.Resolvers = "digitalocean", []string{knot.Addr}
			d, err := newDNS01(c.dns, nil, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := d.solver.Present(ctx, chal); err != nil {
				t.Fatal(err)
			}
			got := <-calls
			if got.method != "POST" || got.path != "/v2/domains/example.test/records" || got.auth != "Bearer "+c.bearer || !strings.Contains(got.body, txtValue(chal.KeyAuthorization)) {
				t.Fatalf("the API got %+v; want a POST of the record with Bearer %s", got, c.bearer)
			}
			if err := d.solver.CleanUp(ctx, chal); err != nil {
				t.Fatal(err)
			}
			if got := <-calls; got.method != "DELETE" || got.path != "/v2/domains/example.test/records/7" || got.auth != "Bearer "+c.bearer {
				t.Fatalf("the API got %+v; want the record deleted", got)
			}
		})
	}
	// No token anywhere: the error says where one goes.
	t.Setenv("DO_AUTH_TOKEN", "")
	_, err := newDNS01(config.DNS{Provider: "digitalocean"}, nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "put DO_AUTH_TOKEN in it (the token alone), tls.dns.credentials_file or the environment") {
		t.Fatalf("no token: %v", err)
	}
}

// TestEveryProviderBuilds: each provider config accepts is built from
// credentials in a file, and the ones built on lego get its solver.
func TestEveryProviderBuilds(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "tsig.key")
	os.WriteFile(key, []byte(`key "k" { algorithm hmac-sha256; secret "`+base64.StdEncoding.EncodeToString(make([]byte, 32))+`"; };`), 0o600)
	creds := map[string]string{
		"cloudflare":   "CLOUDFLARE_DNS_API_TOKEN=t",
		"digitalocean": "DO_AUTH_TOKEN=t",
		"hetzner":      "HETZNER_API_TOKEN=t",
		"gandi":        "GANDIV5_PERSONAL_ACCESS_TOKEN=t",
		"ovh":          "OVH_APPLICATION_KEY=a\nOVH_APPLICATION_SECRET=b\nOVH_CONSUMER_KEY=c",
		"route53":      "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=secret",
	}
	for _, name := range config.DNSProviders() {
		d := config.DNS{Provider: name}
		if c, ok := creds[name]; ok {
			d.CredentialsFile = filepath.Join(dir, name+".env")
			os.WriteFile(d.CredentialsFile, []byte(c), 0o600)
		} else {
			d.RFC2136 = config.RFC2136{Server: "192.0.2.53", TSIGKeyFile: key}
		}
		s, err := newDNS01(d, nil, slog.New(slog.DiscardHandler))
		if name == "route53" && !route53InBuild {
			// ./test also runs this package with -tags route53.
			if !errors.Is(err, config.ErrRoute53NotBuilt) {
				t.Errorf("route53 without its build tag: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, lego := s.solver.(*legoSolver); lego == (name == "cloudflare") {
			t.Errorf("%s: solver %T", name, s.solver)
		}
	}
}

// TestPropagationWait: without tls.dns.resolvers the record is looked for
// at the zone's own nameservers, found through its NS records; and a
// record that never appears ends the wait after the provider's
// propagation timeout, with an error naming where it was missing.
func TestPropagationWait(t *testing.T) {
	knot := knottest.Start(t, "example.test")
	t.Setenv("DNSUPDATE_PROPAGATION_TIMEOUT", "3")
	t.Setenv("DNSUPDATE_POLLING_INTERVAL", "1")
	// lego finds the zone with its process-wide client; the system's
	// resolvers know nothing of example.test.
	prev := dns01.DefaultClient()
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{knot.Addr}}))
	t.Cleanup(func() { dns01.SetDefaultClient(prev) })
	d, err := newDNS01(config.DNS{Provider: "rfc2136", RFC2136: config.RFC2136{Server: knot.Addr, TSIGKeyFile: knot.KeyFile}}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := d.solver.(*legoSolver)
	if len(s.resolvers) != 0 || s.nsPort != "53" || s.lookup != net.DefaultResolver {
		t.Fatalf("without resolvers the solver asks %v, port %s", s.resolvers, s.nsPort)
	}
	// The zone's NS is ns1.example.test, 127.0.0.1: on Knot's port, not 53.
	_, s.nsPort, _ = net.SplitHostPort(knot.Addr)
	s.lookup = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, knot.Addr)
	}}
	ctx := context.Background()
	servers, err := s.authoritativeServers(ctx, "_acme-challenge.matrix.example.test.")
	if err != nil || !slices.Equal(servers, []string{knot.Addr}) {
		t.Fatalf("authoritative servers %v (err %v), want %s", servers, err, knot.Addr)
	}
	chal := acme.Challenge{Identifier: acme.Identifier{Type: "dns", Value: "matrix.example.test"}, Token: "tok", KeyAuthorization: "tok.thumb"}
	if err := s.Present(ctx, chal); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx, chal); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanUp(ctx, chal); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Wait(ctx, chal)
	if err == nil || !strings.Contains(err.Error(), "the TXT record _acme-challenge.matrix.example.test. was not seen at "+knot.Addr+" within 3s") {
		t.Fatalf("waiting for a record that is gone: %v", err)
	}
	if took := time.Since(start); took < 3*time.Second || took > 10*time.Second {
		t.Fatalf("the wait ended after %s; the propagation timeout is 3s", took)
	}
}
