package server

import (
	"cmp"
	"context"
	"crypto/x509"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/fedcheck"
)

// The self-check: "wellknownd check" run by the edge against itself as the
// world reaches it (DNS, its public addresses, each address family on its
// own), so that a closed port, a lost .well-known or a broken IPv6 is seen
// in minutes by the edge instead of in days by users. It runs once the
// edge is ready, then every self_check.interval, and after every reload
// and every certificate obtained or renewed; one goroutine runs it, so two
// runs never overlap, and triggers that arrive during a run make one more.

// selfChecker schedules the self-check and keeps its verdicts.
type selfChecker struct {
	s *Server
	// trigger asks for a run now; a trigger sent during a run is kept
	// (capacity 1) and makes one run after it.
	trigger chan struct{}
	running atomic.Bool
	// started: the loop runs (TLS is on and Run has begun).
	started atomic.Bool
	// echo answers the encoded-path probes the self-check sends.
	echo    *echoes
	results *selfCheckResults
}

func newSelfChecker(s *Server, m *metrics) *selfChecker {
	return &selfChecker{s: s, trigger: make(chan struct{}, 1), echo: newEchoes(), results: newSelfCheckResults(s.log, m)}
}

// Trigger asks for a run as soon as the one under way (if any) is done.
func (sc *selfChecker) Trigger() {
	select {
	case sc.trigger <- struct{}{}:
	default:
	}
}

// loop runs the self-check until ctx is done. A run cut short by ctx
// (the server stopping) is not recorded: the listeners closing would
// otherwise read as every check failing.
func (sc *selfChecker) loop(ctx context.Context, nw selfCheckNet) {
	sc.started.Store(true)
	defer sc.started.Store(false)
	// The first run waits for the edge to be ready (a certificate for
	// every host, the homeserver up), for at most two minutes: after that
	// what is not ready is what the self-check should report.
	deadline := time.Now().Add(cmp.Or(sc.s.opts.selfCheckReadyWait, 2*time.Minute))
	for len(sc.s.notReady()) > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	// The certificates obtained at start are what the first run checks.
	select {
	case <-sc.trigger:
	default:
	}
	for {
		interval := sc.s.config().SelfCheck.Interval
		var tick <-chan time.Time
		var timer *time.Timer
		if interval > 0 {
			sc.run(ctx, nw)
			if ctx.Err() != nil {
				return
			}
			timer = time.NewTimer(interval)
			tick = timer.C
			sc.results.scheduled(time.Now().Add(interval))
		} else {
			// Off (a reload may turn it on: its trigger then runs it).
			sc.results.disable()
		}
		select {
		case <-ctx.Done():
		case <-tick:
		case <-sc.trigger:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// run checks the edge once and records the verdicts.
func (sc *selfChecker) run(ctx context.Context, nw selfCheckNet) {
	sc.running.Store(true)
	defer sc.running.Store(false)
	cfg := sc.s.config()
	opts := fedcheck.Options{Timeout: 10 * time.Second, LookupIP: nw.lookup, Dial: nw.dial,
		Notary: cfg.SelfCheck.NotaryName, EncodedPath: sc.echo.path}
	if src := sc.s.Certificates(); src != nil {
		opts.Roots = src.Roots()
	}
	// What this edge serves is what the world must get, byte for byte.
	opts.Documents = map[string][]byte{}
	for name, d := range map[string][]byte{"server": cfg.Documents.Server.Body, "client": cfg.Documents.Client.Body, "support": cfg.Documents.Support.Body} {
		if d != nil {
			opts.Documents[name] = d
		}
	}
	if nw.roots != nil {
		opts.Roots = nw.roots
	}
	if len(nw.extraRoots) > 0 {
		roots := x509.NewCertPool()
		if opts.Roots != nil {
			roots = opts.Roots.Clone()
		}
		for _, c := range nw.extraRoots {
			roots.AddCert(c)
		}
		opts.Roots = roots
	}
	defer sc.echo.reset()
	started := time.Now()
	report := fedcheck.RunByFamily(ctx, cfg.Name, opts)
	if ctx.Err() != nil {
		return
	}
	sc.results.record(report.Checks, started)
}

// selfCheckNet is how the self-check reaches the edge: nil functions are
// the system's resolver and dialer (the world's view).
type selfCheckNet struct {
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	// roots, when set, replace the certificate source's roots (tests: the
	// ACME test CA's).
	roots *x509.CertPool
	// extraRoots are trusted besides the certificate source's roots
	// (tests: a notary's certificate).
	extraRoots []*x509.Certificate
}

// listenerNet is the self-check's network when listen.https or
// listen.federation has a port chosen at start (":0", tests and trials):
// no address outside reaches such a port, so every name resolves to the
// listener's own address and each port the documents name (443, 8448 or
// a configured one) goes to the listener that has it. Otherwise (nil) the
// self-check goes through DNS to the public addresses, as the world does.
func listenerNet(l config.Listen, httpsAddr, fedAddr string) (selfCheckNet, bool) {
	hp, fp := configuredPort(l.HTTPS), configuredPort(l.Federation)
	if hp != 0 && fp != 0 {
		return selfCheckNet{}, false
	}
	https, _ := netip.ParseAddrPort(httpsAddr)
	fed, fedErr := netip.ParseAddrPort(fedAddr)
	ports := map[uint16]uint16{443: https.Port()}
	if hp > 0 {
		ports[uint16(hp)] = https.Port()
	}
	if fedErr == nil {
		ports[8448] = fed.Port()
		if fp > 0 {
			ports[uint16(fp)] = fed.Port()
		}
	}
	lookup := func(_ context.Context, network, _ string) ([]netip.Addr, error) {
		ip := https.Addr().Unmap()
		if !ip.IsValid() {
			// No https listener: the federation one is the edge.
			ip = fed.Addr().Unmap()
		}
		switch {
		case ip.IsUnspecified() && ip.Is6():
			// [::] takes IPv4 and IPv6 alike.
			if network == "ip4" {
				return []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}, nil
			}
			return []netip.Addr{netip.IPv6Loopback()}, nil
		case ip.IsUnspecified():
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		if (network == "ip4") != ip.Is4() {
			return nil, nil
		}
		return []netip.Addr{ip}, nil
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			if p, ok := ports[ap.Port()]; ok {
				addr = netip.AddrPortFrom(ap.Addr(), p).String()
			}
		}
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
	}
	return selfCheckNet{lookup: lookup, dial: dial}, true
}

// configuredPort is a listen address's port: 0 when chosen at start, -1
// when the listener is off.
func configuredPort(addr string) int {
	if addr == "" {
		return -1
	}
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// orWorld is n, or the world's network when n is nil.
func (n *selfCheckNet) orWorld() selfCheckNet {
	if n == nil {
		return selfCheckNet{}
	}
	return *n
}
