package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/acmetest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/localca"
	"github.com/wellknownd/wellknownd/internal/testing/syncbuf"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// homeserver is a stand-in homeserver for the self-check: signed keys for
// example.test, the federation and client versions. Its key endpoint can
// be broken, and it counts the key requests it answers and how many it
// answered at once at most.
type homeserver struct {
	*httptest.Server
	broken              atomic.Bool
	keyRequests         atomic.Int64
	inflight, inflightM atomic.Int64
}

func newHomeserver(t *testing.T, serverName string) *homeserver {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	h := &homeserver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/_matrix/key/v2/server":
			h.keyRequests.Add(1)
			n := h.inflight.Add(1)
			defer h.inflight.Add(-1)
			for m := h.inflightM.Load(); n > m && !h.inflightM.CompareAndSwap(m, n); m = h.inflightM.Load() {
			}
			// Long enough that two runs at once would overlap here.
			time.Sleep(200 * time.Millisecond)
			if h.broken.Load() {
				http.Error(w, `{"errcode":"M_UNKNOWN"}`, http.StatusInternalServerError)
				return
			}
			body, _ := json.Marshal(map[string]any{
				"server_name":     serverName,
				"valid_until_ts":  time.Now().Add(time.Hour).UnixMilli(),
				"verify_keys":     map[string]any{"ed25519:a": map[string]string{"key": base64.RawStdEncoding.EncodeToString(pub)}},
				"old_verify_keys": map[string]any{},
			})
			body, _ = gomatrixserverlib.SignJSON(serverName, "ed25519:a", priv, body)
			w.Write(body)
		case "/_matrix/federation/v1/version":
			w.Write([]byte(`{"server":{"name":"Stand-in","version":"1"}}`))
		case "/_matrix/client/versions":
			w.Write([]byte(`{"versions":["v1.11"]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

// worldEdge is an edge whose self-check sees the world a test makes.
type worldEdge struct {
	srv  *Server
	log  *syncbuf.Buffer
	cfg  string
	stop func()
}

// testWorld is the network a test's self-check sees: names have an A
// record (127.0.0.1) and, unless noIPv6, an AAAA record (::1), and the
// ports in ports are mapped to others, as a router's port forwarding does.
// Every other name does not exist.
type testWorld struct {
	names  []string
	ports  map[string]string
	noIPv6 bool
	// addrs map whole addresses (ip:port), before ports.
	addrs map[string]string
}

func (w testWorld) net() *selfCheckNet {
	return &selfCheckNet{
		lookup: func(_ context.Context, network, host string) ([]netip.Addr, error) {
			if !slices.Contains(w.names, host) {
				return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			}
			if network == "ip4" {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
			if w.noIPv6 {
				return nil, nil
			}
			return []netip.Addr{netip.IPv6Loopback()}, nil
		},
		dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			if a, ok := w.addrs[addr]; ok {
				addr = a
			} else if p, ok := w.ports[port]; ok {
				addr = net.JoinHostPort(host, p)
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
}

// startWorldEdge runs cfgYAML (Run, on its listeners) with its
// self-check in world, logging to a buffer the test reads.
func startWorldEdge(t *testing.T, cfgYAML string, world testWorld, opts ...Option) *worldEdge {
	t.Helper()
	cfg, problems := config.Parse("edge.yaml", []byte(cfgYAML))
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatalf("config: %v", errs)
	}
	buf := &syncbuf.Buffer{}
	nw := world.net()
	opts = append([]Option{func(o *options) { o.selfCheckNet = nw }}, opts...)
	srv := New(cfg, slog.New(slog.NewTextHandler(buf, nil)), opts...)
	return &worldEdge{srv: srv, log: buf, cfg: cfgYAML, stop: runServer(t, srv)}
}

// startTestWorldEdge runs an edge for example.test, delegated to
// matrix.example.test:8448, in the world of both names with A and AAAA
// records, ports 443 and 8448 mapped to the https and federation
// listeners. The https listener takes IPv4 only (127.0.0.1), the
// federation one both (IPv6 with IPv4 mapped): so the documents over
// IPv6 fail, really refused, while federation over IPv6 passes.
func startTestWorldEdge(t *testing.T, up string, selfCheck string) *worldEdge {
	t.Helper()
	_, hp, _ := net.SplitHostPort(freeport.Addr(t))
	_, fp, _ := net.SplitHostPort(freeport.Addr(t))
	cfgYAML := edgeconf.New(edgeconf.Names("example.test", "matrix.example.test:8448", "https://matrix.example.test"),
		edgeconf.Listen("", "127.0.0.1:"+hp, "[::]:"+fp, ""), edgeconf.Internal(t.TempDir()), edgeconf.Upstream(up)) + selfCheck
	return startWorldEdge(t, cfgYAML, testWorld{names: []string{"example.test", "matrix.example.test"}, ports: map[string]string{"443": hp, "8448": fp}})
}

// selfCheckDoc is /status's self_check, as a client reads it.
type selfCheckDoc struct {
	LastRun *time.Time `json:"last_run"`
	NextRun *time.Time `json:"next_run"`
	Running bool       `json:"running"`
	Checks  []struct {
		Name    string    `json:"name"`
		OK      bool      `json:"ok"`
		Skipped bool      `json:"skipped"`
		Cause   string    `json:"cause"`
		Fix     string    `json:"fix"`
		Since   time.Time `json:"since"`
	} `json:"checks"`
}

func (e *worldEdge) selfCheck(t *testing.T) selfCheckDoc {
	t.Helper()
	rec := httptest.NewRecorder()
	e.srv.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/status", nil))
	var doc struct {
		SelfCheck *selfCheckDoc `json:"self_check"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("/status: %v\n%s", err, rec.Body)
	}
	if doc.SelfCheck == nil {
		return selfCheckDoc{}
	}
	return *doc.SelfCheck
}

// verdict is check's line of /status's self_check: "passed", "failed",
// "skipped", or "" when there is none; and since when it holds.
func (d selfCheckDoc) verdict(check string) (string, time.Time, string) {
	for _, c := range d.Checks {
		if c.Name == check {
			switch {
			case c.Skipped:
				return "skipped", c.Since, c.Cause
			case c.OK:
				return "passed", c.Since, c.Cause
			}
			return "failed", c.Since, c.Cause
		}
	}
	return "", time.Time{}, ""
}

func (e *worldEdge) metric(t *testing.T, series string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.srv.adminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestSelfCheckEachFamilyOnItsOwn: the self-check resolves the names
// (A and AAAA) and dials each address on its own. The documents' port
// takes IPv4 only: over IPv4 they pass, over IPv6 they fail with the
// address refused; federation, on a port that takes both, passes over
// both. The schedule (1s) runs it again and again.
func TestSelfCheckEachFamilyOnItsOwn(t *testing.T) {
	hs := newHomeserver(t, "example.test")
	e := startTestWorldEdge(t, hs.URL, "self_check: {interval: 1s}\n")
	var doc selfCheckDoc
	wait.Until(t, "three self-check runs", 2*time.Minute, func() error {
		doc = e.selfCheck(t)
		if doc.LastRun == nil || hs.keyRequests.Load() < 6 {
			return fmt.Errorf("%d key requests so far", hs.keyRequests.Load())
		}
		return nil
	})
	for check, want := range map[string]string{
		"A records of example.test":               "passed",
		"AAAA records of example.test":            "passed",
		"AAAA records of matrix.example.test":     "passed",
		"documents over IPv4":                     "passed",
		"documents over IPv6":                     "failed",
		"federation certificate over IPv4":        "passed",
		"federation certificate over IPv6":        "passed",
		"federation keys over IPv4":               "passed",
		"federation keys over IPv6":               "passed",
		"encoded path over IPv4":                  "passed",
		"encoded path over IPv6":                  "passed",
		"well-known server document":              "passed",
		"well-known client document":              "passed",
		"client API versions":                     "passed",
		"notary matrix.org (not configured here)": "",
	} {
		if got, _, cause := doc.verdict(check); got != want {
			t.Errorf("%s: %s (%s), want %s", check, got, cause, want)
		}
	}
	if _, _, cause := doc.verdict("documents over IPv6"); !strings.Contains(cause, "[::1]:443") || !strings.Contains(cause, "refused") {
		t.Errorf("documents over IPv6: cause %q does not name [::1]:443 refusing", cause)
	}
	if v := e.metric(t, `wellknownd_selfcheck_ok{check="documents over IPv6"}`); v != "0" {
		t.Errorf(`wellknownd_selfcheck_ok{check="documents over IPv6"} = %q, want 0`, v)
	}
	if v := e.metric(t, `wellknownd_selfcheck_ok{check="documents over IPv4"}`); v != "1" {
		t.Errorf(`wellknownd_selfcheck_ok{check="documents over IPv4"} = %q, want 1`, v)
	}
	// Logged once, though every run finds it again.
	if n := strings.Count(e.log.String(), `check="documents over IPv6"`); n != 1 {
		t.Errorf("the IPv6 documents' failure logged %d times, want once:\n%s", n, e.log)
	}
}

// TestSelfCheckVerdictChange: the homeserver's key endpoint breaks, then
// comes back. Each change flips the metric, moves since (and the
// metric's change time), and is logged once, while runs go on every
// second. Reloads trigger runs, and runs never overlap: the key endpoint
// never sees two self-check requests at once, though reloads and the
// schedule ask for runs all the time.
func TestSelfCheckVerdictChange(t *testing.T) {
	hs := newHomeserver(t, "example.test")
	e := startTestWorldEdge(t, hs.URL, "self_check: {interval: 1s}\n")
	const check = "federation keys over IPv4"
	series := `wellknownd_selfcheck_ok{check="` + check + `"}`
	changed := `wellknownd_selfcheck_last_change_timestamp_seconds{check="` + check + `"}`
	var since time.Time
	wait.Until(t, "a passing key check", 2*time.Minute, func() error {
		v, s, cause := e.selfCheck(t).verdict(check)
		if v != "passed" {
			return fmt.Errorf("%q: %s", v, cause)
		}
		since = s
		return nil
	})
	passedAt := e.metric(t, changed)
	time.Sleep(1100 * time.Millisecond) // since has a resolution of a second

	hs.broken.Store(true)
	wait.Until(t, "the key check failing", time.Minute, func() error {
		if v, _, _ := e.selfCheck(t).verdict(check); v != "failed" {
			return fmt.Errorf("still %q", v)
		}
		return nil
	})
	_, failedSince, cause := e.selfCheck(t).verdict(check)
	if !failedSince.After(since) || !strings.Contains(cause, "500 Internal Server Error") {
		t.Errorf("failed since %v (passed since %v), cause %q", failedSince, since, cause)
	}
	if v := e.metric(t, series); v != "0" {
		t.Errorf("%s = %q, want 0", series, v)
	}
	if v := e.metric(t, changed); v == passedAt {
		t.Errorf("%s did not move from %s", changed, v)
	}
	// More runs find the same: nothing more is logged, since stays.
	n := hs.keyRequests.Load()
	wait.Until(t, "two more runs", time.Minute, func() error {
		if hs.keyRequests.Load() < n+4 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if _, s, _ := e.selfCheck(t).verdict(check); !s.Equal(failedSince) {
		t.Errorf("since moved from %v to %v without a change", failedSince, s)
	}
	if c := strings.Count(e.log.String(), `msg="self-check: failed" check="`+check+`"`); c != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", c, e.log)
	}

	hs.broken.Store(false)
	wait.Until(t, "the key check passing again", time.Minute, func() error {
		if v, _, _ := e.selfCheck(t).verdict(check); v != "passed" {
			return fmt.Errorf("still %q", v)
		}
		return nil
	})
	if v := e.metric(t, series); v != "1" {
		t.Errorf("%s = %q, want 1", series, v)
	}
	if c := strings.Count(e.log.String(), `msg="self-check: passed again" check="`+check+`"`); c != 1 {
		t.Errorf("passing again was logged %d times, want once:\n%s", c, e.log)
	}

	// A reload, with the schedule at an hour, triggers a run: reloads
	// from many clients at once each ask for one, and they never overlap.
	hourly := strings.Replace(e.cfg, "interval: 1s", "interval: 1h", 1)
	reload := func() error {
		return e.srv.Reload(context.Background(), func() (*config.Config, error) {
			cfg, problems := config.Parse("edge.yaml", []byte(hourly))
			if errs := problems.Errors(); len(errs) > 0 {
				return nil, fmt.Errorf("%v", errs)
			}
			return cfg, nil
		})
	}
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	// The run the schedule or that reload started ends; then nothing runs
	// for an hour, unless triggered.
	var quiet int64
	wait.Until(t, "the runs to settle", time.Minute, func() error {
		n := hs.keyRequests.Load()
		time.Sleep(3 * time.Second)
		if hs.keyRequests.Load() != n {
			return fmt.Errorf("still running")
		}
		quiet = n
		return nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := reload(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wait.Until(t, "a run after the reloads", time.Minute, func() error {
		if hs.keyRequests.Load() < quiet+2 {
			return fmt.Errorf("no run yet")
		}
		return nil
	})
	if m := hs.inflightM.Load(); m != 1 {
		t.Errorf("the key endpoint saw %d self-check requests at once: runs overlapped", m)
	}
}

// TestSelfCheckNotary: with self_check.notary, the self-check asks the
// notary what it reports of this server's keys: the keys the homeserver
// serves pass; a stale key (the notary has not seen the current one)
// fails, and says which keys it reports.
func TestSelfCheckNotary(t *testing.T) {
	hs := newHomeserver(t, "example.test")
	var stale atomic.Bool
	var asked atomic.Int64
	notary := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/key/v2/query/example.test" {
			http.NotFound(w, r)
			return
		}
		asked.Add(1)
		keys := `{"server_name":"example.test","valid_until_ts":1,"verify_keys":{"ed25519:old":{"key":"AAAA"}}}`
		if !stale.Load() {
			resp, err := http.Get(hs.URL + "/_matrix/key/v2/server")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			keys = string(b)
		}
		w.Write([]byte(`{"server_keys":[` + keys + `]}`))
	}))
	t.Cleanup(notary.Close)
	_, hp, _ := net.SplitHostPort(freeport.Addr(t))
	cfgYAML := edgeconf.New(edgeconf.Names("example.test", "example.test:443", "https://example.test"), edgeconf.Hosts("example.test"),
		edgeconf.Listen("", "127.0.0.1:"+hp, "", ""), edgeconf.Internal(t.TempDir()), edgeconf.Upstream(hs.URL)) +
		"self_check: {interval: 1s, notary: \"" + notary.Listener.Addr().String() + "\"}\n"
	world := testWorld{names: []string{"example.test"}, ports: map[string]string{"443": hp}, noIPv6: true}
	nw := world.net()
	nw.extraRoots = []*x509.Certificate{notary.Certificate()}
	e := startWorldEdge(t, cfgYAML, world, func(o *options) { o.selfCheckNet = nw })
	check := "notary " + notary.Listener.Addr().String()
	verdict := func(want string) string {
		var cause string
		wait.Until(t, check+" "+want, time.Minute, func() error {
			var v string
			v, _, cause = e.selfCheck(t).verdict(check)
			if v != want {
				return fmt.Errorf("%q: %s", v, cause)
			}
			return nil
		})
		return cause
	}
	verdict("passed")
	stale.Store(true)
	if cause := verdict("failed"); !strings.Contains(cause, "it reports keys ed25519:old, not ed25519:a that this server serves") {
		t.Errorf("cause %q", cause)
	}
	if asked.Load() < 2 {
		t.Errorf("the notary was asked %d times", asked.Load())
	}
}

// TestSelfCheckDialsWhereMServerSays: m.server names a port that no
// listener of the edge has. The self-check connects there as a remote
// server would: over IPv4 a port mapping (127.0.0.1 only) forwards it to
// the federation listener, and the federation checks pass; over IPv6
// nothing is there, and they fail, naming the address.
func TestSelfCheckDialsWhereMServerSays(t *testing.T) {
	hs := newHomeserver(t, "example.test")
	_, hp, _ := net.SplitHostPort(freeport.Addr(t))
	fedAddr, elsewhere := freeport.Addr(t), freeport.Addr(t)
	_, port, _ := net.SplitHostPort(elsewhere)
	forward(t, elsewhere, fedAddr)
	cfgYAML := edgeconf.New(edgeconf.Names("example.test", "matrix.example.test:"+port, "https://matrix.example.test"),
		edgeconf.Listen("", "[::]:"+hp, fedAddr, ""), edgeconf.Internal(t.TempDir()), edgeconf.Upstream(hs.URL)) +
		"self_check: {interval: 1h}\n"
	e := startWorldEdge(t, cfgYAML, testWorld{names: []string{"example.test", "matrix.example.test"}, ports: map[string]string{"443": hp}})
	var doc selfCheckDoc
	wait.Until(t, "the self-check", 2*time.Minute, func() error {
		if doc = e.selfCheck(t); doc.LastRun == nil {
			return fmt.Errorf("not run yet")
		}
		return nil
	})
	for check, want := range map[string]string{
		"documents over IPv4":              "passed",
		"documents over IPv6":              "passed",
		"federation certificate over IPv4": "passed",
		"federation keys over IPv4":        "passed",
		"federation certificate over IPv6": "failed",
		"federation keys over IPv6":        "failed",
	} {
		if got, _, cause := doc.verdict(check); got != want {
			t.Errorf("%s: %s (%s), want %s", check, got, cause, want)
		}
	}
	if _, _, cause := doc.verdict("federation certificate over IPv6"); !strings.Contains(cause, "[::1]:"+port+": nothing answers there") {
		t.Errorf("cause %q does not name [::1]:%s", cause, port)
	}
}

// forward accepts on addr and copies each connection to and from to, as
// a port mapping does.
func forward(t *testing.T, addr, to string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
}

// TestSelfCheckAfterRenewal: a certificate renewed (tls.mode acme) makes
// the self-check run, though its schedule is an hour away.
func TestSelfCheckAfterRenewal(t *testing.T) {
	hs := newHomeserver(t, "example.com")
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.Start(t, httpPort, tlsPort)
	cfgYAML := edgeconf.New(
		edgeconf.Listen(fmt.Sprintf("127.0.0.1:%d", httpPort), fmt.Sprintf("127.0.0.1:%d", tlsPort), "", ""),
		edgeconf.ACME(ca.DirectoryURL, ca.APIRootFile, t.TempDir(), "challenges: [http-01]",
			fmt.Sprintf("dns: {resolvers: [%q]}", ca.ResolverAddr)),
		edgeconf.Upstream(hs.URL)) + "self_check: {interval: 1h}\n"
	world := testWorld{names: acmeHosts, ports: map[string]string{"443": strconv.Itoa(tlsPort)}, noIPv6: true}
	nw := world.net()
	nw.roots = ca.Roots()
	e := startWorldEdge(t, cfgYAML, world, func(o *options) { o.selfCheckNet = nw })
	waitCert(t, fmt.Sprintf("127.0.0.1:%d", tlsPort), "matrix.example.com", ca.Roots())
	var runs int64
	wait.Until(t, "the first run, and no other", 2*time.Minute, func() error {
		n := hs.keyRequests.Load()
		time.Sleep(3 * time.Second)
		if n == 0 || hs.keyRequests.Load() != n || e.selfCheck(t).LastRun == nil {
			return fmt.Errorf("%d key requests", n)
		}
		runs = n
		return nil
	})
	if err := e.srv.Certificates().Renew(context.Background()); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	wait.Until(t, "a run after the renewal", time.Minute, func() error {
		if hs.keyRequests.Load() <= runs {
			return fmt.Errorf("no run yet")
		}
		return nil
	})
}

// TestSelfCheckDocumentsFromAnotherServer: the AAAA record still points
// at the old host (a Worker that served the documents before), which has a
// valid certificate but other documents. Over IPv4 the documents are this
// edge's; over IPv6 the self-check finds another server's, and says so.
func TestSelfCheckDocumentsFromAnotherServer(t *testing.T) {
	hs := newHomeserver(t, "example.test")
	old := localca.New(t)
	oldAddr := old.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"m.server":"old.example.test:443"}`))
	}), "example.test")
	_, hp, _ := net.SplitHostPort(freeport.Addr(t))
	cfgYAML := edgeconf.New(edgeconf.Names("example.test", "example.test:443", "https://example.test"), edgeconf.Hosts("example.test"),
		edgeconf.Listen("", "127.0.0.1:"+hp, "", ""), edgeconf.Internal(t.TempDir()), edgeconf.Upstream(hs.URL)) +
		"self_check: {interval: 1h}\n"
	world := testWorld{names: []string{"example.test"}, ports: map[string]string{"443": hp}, addrs: map[string]string{"[::1]:443": oldAddr}}
	nw := world.net()
	block, _ := pem.Decode(old.PEM())
	oldRoot, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	nw.extraRoots = []*x509.Certificate{oldRoot}
	e := startWorldEdge(t, cfgYAML, world, func(o *options) { o.selfCheckNet = nw })
	var doc selfCheckDoc
	wait.Until(t, "the self-check", 2*time.Minute, func() error {
		if doc = e.selfCheck(t); doc.LastRun == nil {
			return fmt.Errorf("not run yet")
		}
		return nil
	})
	if v, _, cause := doc.verdict("documents over IPv4"); v != "passed" {
		t.Errorf("documents over IPv4: %s (%s)", v, cause)
	}
	v, _, cause := doc.verdict("documents over IPv6")
	if want := `/.well-known/matrix/server at [::1]:443: another server answers: "{\"m.server\":\"old.example.test:443\"}" is not what this edge serves`; v != "failed" || !strings.Contains(cause, want) {
		t.Errorf("documents over IPv6: %s (%s), want failed with %s", v, cause, want)
	}
}
