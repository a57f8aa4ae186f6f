package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wellknownd/wellknownd/config"
)

// files serves a certificate and key from disk, as another tool (acme.sh,
// certbot, a corporate PKI) renews them. It polls the files and swaps in a
// renewed pair only once it loads and matches; a broken one is logged and
// the pair in service stays.
type files struct {
	certFile, keyFile string
	// hostsMu guards hosts, which a reload changes.
	hostsMu  sync.Mutex
	hosts    []string
	interval time.Duration
	log      *slog.Logger
	cur      atomic.Pointer[tls.Certificate]
	// mu guards seen, the files' state last tried, so a broken pair is
	// reported once, not at every poll.
	mu    sync.Mutex
	seen  string
	stopc chan struct{}
}

func newFiles(opts Options) (Source, error) {
	f := &files{
		certFile: opts.TLS.CertFile, keyFile: opts.TLS.KeyFile,
		hosts: lowerAll(opts.Hosts), interval: opts.PollInterval, log: opts.Log,
		stopc: make(chan struct{}),
	}
	if f.interval <= 0 {
		f.interval = 5 * time.Second
	}
	pair, err := config.LoadKeyPair(f.certFile, f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w", err)
	}
	f.seen = f.state()
	f.cur.Store(pair)
	f.logLoaded("certificate: loaded from files", pair)
	return f, nil
}

func (f *files) TLSConfig() *tls.Config {
	c := baseTLSConfig()
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return f.cur.Load(), nil }
	return c
}

func (f *files) HTTPHandler(next http.Handler) http.Handler { return next }

func (f *files) Start(ctx context.Context) error {
	go func() {
		t := time.NewTicker(f.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-f.stopc:
				return
			case <-t.C:
				f.reloadIfChanged()
			}
		}
	}()
	return nil
}

// state is what a change is detected by: both files' size and mtime. A
// renewal tool that rewrites the files in place or renames new ones over
// them changes it either way.
func (f *files) state() string {
	var b strings.Builder
	for _, p := range []string{f.certFile, f.keyFile} {
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d;", st.Size(), st.ModTime().UnixNano())
		} else {
			b.WriteString("missing;")
		}
	}
	return b.String()
}

func (f *files) reloadIfChanged() {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state()
	if st == f.seen {
		return
	}
	f.seen = st
	if err := f.reload(); err != nil {
		f.log.Error("certificate: the changed files are not usable; still serving the previous pair", "err", err)
	}
}

func (f *files) reload() error {
	pair, err := config.LoadKeyPair(f.certFile, f.keyFile)
	if err != nil {
		return err
	}
	f.cur.Store(pair)
	f.logLoaded("certificate: reloaded from files", pair)
	return nil
}

func (f *files) logLoaded(msg string, pair *tls.Certificate) {
	f.log.Info(msg, "cert_file", f.certFile, "names", strings.Join(pair.Leaf.DNSNames, ","), "not_after", pair.Leaf.NotAfter, "serial", pair.Leaf.SerialNumber.String())
	for _, h := range f.hostList() {
		if pair.Leaf.VerifyHostname(h) != nil {
			f.log.Warn("certificate: does not name a host this daemon answers for", "host", h, "cert_file", f.certFile)
		}
	}
}

// Renew re-reads the files now.
func (f *files) Renew(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = f.state()
	return f.reload()
}

// SetHosts is called on every reload; a reload is also the moment to look
// at the files (acme.sh's --reloadcmd, certbot's deploy hook): a renewed
// pair is served at once, not at the next poll.
func (f *files) SetHosts(_ context.Context, hosts []string) error {
	f.hostsMu.Lock()
	f.hosts = lowerAll(hosts)
	f.hostsMu.Unlock()
	f.reloadIfChanged()
	f.logLoaded("certificate: hosts changed", f.cur.Load())
	return nil
}

func (f *files) Status() []Status {
	leaf := f.cur.Load().Leaf
	hosts := f.hostList()
	out := make([]Status, 0, len(hosts))
	for _, h := range hosts {
		st := Status{Name: h}
		if leaf.VerifyHostname(h) == nil {
			st.NotAfter, st.NotBefore, st.Issuer = leaf.NotAfter, leaf.NotBefore, leaf.Issuer.CommonName
		}
		out = append(out, st)
	}
	return out
}

func (f *files) Roots() *x509.CertPool { return nil }

func (f *files) Stop() {
	select {
	case <-f.stopc:
	default:
		close(f.stopc)
	}
}

func (f *files) hostList() []string {
	f.hostsMu.Lock()
	defer f.hostsMu.Unlock()
	return f.hosts
}

func lowerAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	return out
}
