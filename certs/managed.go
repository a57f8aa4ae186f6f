package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"

	"github.com/wellknownd/wellknownd/config"
)

// managed is a Source whose certificates certmagic obtains, stores, renews
// and swaps in: from an ACME CA (mode acme) or the local CA (internal).
type managed struct {
	// roots is the local CA's root for mode internal.
	roots  *x509.CertPool
	notify func(event string)
	// mu guards names, which a reload changes, and pending.
	mu    sync.Mutex
	cache *certmagic.Cache
	magic *certmagic.Config
	// acme is the ACME issuer whose HTTP-01 challenges the HTTP listener
	// answers; nil for the local CA.
	acme *certmagic.ACMEIssuer
	// zerossl is the ZeroSSL API issuer (ca: zerossl, or Let's Encrypt's
	// fallback), whose HTTP validation requests the HTTP listener answers.
	zerossl *certmagic.ZeroSSLIssuer
	names   []string
	// pending are the names that certmagic has not taken yet: their
	// first attempt failed (storage down, a bad write). retry tries them
	// again with backoff, and so does the next reload.
	pending []string
	retry   chan struct{}
	log     *slog.Logger
	// async: an ACME CA may be slow or down, and the listeners must serve
	// meanwhile (they answer its challenges); the local CA is instant.
	async bool
	// storage is where certificates are kept: a directory, or PostgreSQL
	// shared with other edges.
	storage storage
}

// newManaged sets up certmagic with storage under dir. Issuers are added by
// the caller.
func newManaged(opts Options, st storage) *managed {
	m := &managed{log: opts.Log, names: config.CertificateNames(opts.Hosts), notify: opts.OnEvent, storage: st, retry: make(chan struct{}, 1)}
	if m.notify == nil {
		m.notify = func(string) {}
	}
	zl := zapToSlog(opts.Log)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		Logger:             zl,
		RenewCheckInterval: opts.RenewCheckInterval,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage:    st.certmagic(),
		OnEvent:    m.onEvent,
		Logger:     zl,
		DisableARI: opts.DisableARI,
	})
	return m
}

func (m *managed) TLSConfig() *tls.Config {
	c := baseTLSConfig()
	c.GetCertificate = m.magic.GetCertificate
	// acme-tls/1 stays last: a TLS-ALPN-01 validation offers only it, and
	// certmagic's GetCertificate answers it with the challenge certificate.
	c.NextProtos = append(c.NextProtos, acmez.ACMETLS1Protocol)
	return c
}

func (m *managed) HTTPHandler(next http.Handler) http.Handler {
	h := next
	if m.acme != nil {
		h = m.acme.HTTPChallengeHandler(h)
	}
	if m.zerossl != nil {
		// ZeroSSL's API validates over plain HTTP under
		// /.well-known/pki-validation/, and does not follow the redirect
		// to https that everything else on the HTTP listener gets.
		h = m.zerossl.HTTPValidationHandler(h)
	}
	return h
}

func (m *managed) Start(ctx context.Context) error {
	if err := m.manage(ctx, m.hostNames()); err != nil {
		return err
	}
	go m.watchExpiry(ctx)
	go m.retryPending(ctx)
	if m.storage.pg != nil {
		go m.storage.pg.watch(ctx)
	}
	return nil
}

// StorageStatus says which storage is in use and whether it answers.
func (m *managed) StorageStatus() StorageStatus { return m.storage.status() }

func (m *managed) manage(ctx context.Context, names []string) error {
	var err error
	if m.async {
		err = m.magic.ManageAsync(ctx, names)
	} else {
		err = m.magic.ManageSync(ctx, names)
	}
	if err != nil {
		return fmt.Errorf("managing certificates for %s: %w", strings.Join(names, ", "), err)
	}
	return nil
}

func (m *managed) hostNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.names
}

// SetHosts hands certmagic the names that are new, and drops those no
// longer wanted. A name whose first attempt fails is not forgotten: it
// stays pending, retried with backoff until it is taken, and by the next
// reload too.
func (m *managed) SetHosts(ctx context.Context, hosts []string) error {
	names := config.CertificateNames(hosts)
	m.mu.Lock()
	var added []string
	for _, n := range names {
		if !slices.Contains(m.names, n) || slices.Contains(m.pending, n) {
			added = append(added, n)
		}
	}
	var dropped []certmagic.SubjectIssuer
	for _, n := range m.names {
		if !slices.Contains(names, n) && !slices.Contains(m.pending, n) {
			for _, iss := range m.magic.Issuers {
				dropped = append(dropped, certmagic.SubjectIssuer{Subject: n, IssuerKey: iss.IssuerKey()})
			}
		}
	}
	m.names, m.pending = names, added
	m.mu.Unlock()
	if len(dropped) > 0 {
		m.cache.RemoveManaged(dropped)
	}
	if len(added) == 0 {
		return nil
	}
	if err := m.manage(ctx, added); err != nil {
		select {
		case m.retry <- struct{}{}:
		default:
		}
		return fmt.Errorf("%w; retrying with backoff", err)
	}
	m.taken(added)
	return nil
}

// taken removes names from pending.
func (m *managed) taken(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = slices.DeleteFunc(m.pending, func(n string) bool { return slices.Contains(names, n) })
}

// The retry backoff of pending names: doubling from the first to the last.
const (
	retryFirst = 2 * time.Second
	retryMost  = 5 * time.Minute
)

// retryPending hands certmagic the pending names again, with backoff, from
// when SetHosts says some are pending until none is.
func (m *managed) retryPending(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.retry:
		}
		for wait := retryFirst; ; wait = min(2*wait, retryMost) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			m.mu.Lock()
			pending := slices.Clone(m.pending)
			m.mu.Unlock()
			if len(pending) == 0 {
				break
			}
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			err := m.manage(actx, pending)
			cancel()
			if err == nil {
				m.taken(pending)
				m.log.Info("certificates: names taken on retry", "names", pending)
				break
			}
			m.log.Error("certificates: still failing; retrying", "names", pending, "next_attempt_in", min(2*wait, retryMost), "err", err)
		}
	}
}

// Renew renews every name now and swaps the new certificates in: new
// handshakes get them at once, connections already open keep theirs.
func (m *managed) Renew(ctx context.Context) error {
	var errs []error
	for _, n := range m.hostNames() {
		if err := m.renew(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

func (m *managed) renew(ctx context.Context, name string) error {
	old := m.cache.AllMatchingCertificates(name)
	// RenewCertSync only writes the new certificate to storage; certmagic's
	// own maintenance would load it at its next check. Load it now and
	// retire the old one from the in-memory cache.
	if err := m.magic.RenewCertSync(ctx, name, true); err != nil {
		return err
	}
	fresh, err := m.magic.CacheManagedCertificate(ctx, name)
	if err != nil {
		return err
	}
	var stale []string
	for _, c := range old {
		if c.Hash() != fresh.Hash() {
			stale = append(stale, c.Hash())
		}
	}
	m.cache.Remove(stale)
	return nil
}

func (m *managed) Status() []Status {
	names := m.hostNames()
	out := make([]Status, 0, len(names))
	for _, n := range names {
		st := Status{Name: n}
		for _, c := range m.cache.AllMatchingCertificates(n) {
			if c.Leaf != nil && c.Leaf.NotAfter.After(st.NotAfter) {
				st.NotAfter, st.NotBefore, st.Issuer = c.Leaf.NotAfter, c.Leaf.NotBefore, c.Leaf.Issuer.CommonName
			}
		}
		out = append(out, st)
	}
	return out
}

func (m *managed) Stop() {
	m.cache.Stop()
	m.storage.close()
}

func (m *managed) Roots() *x509.CertPool { return m.roots }

// onEvent logs what certmagic does. It runs synchronously inside
// certmagic, so it only logs.
func (m *managed) onEvent(ctx context.Context, name string, data map[string]any) error {
	id, _ := data["identifier"].(string)
	// certmagic leaves out what does not apply (a first certificate has no
	// "renewal" nor "remaining"): a missing key is no attribute, not <nil>.
	renewal, _ := data["renewal"].(bool)
	switch name {
	case "cert_obtaining":
		m.log.Info("certificate: obtaining", append([]any{"name", id, "renewal", renewal}, present(data, "remaining")...)...)
	case "cert_obtained":
		msg, event := "certificate: obtained", "obtained"
		if r, _ := data["renewal"].(bool); r {
			msg, event = "certificate: renewed", "renewed"
		}
		m.notify(event)
		m.log.Info(msg, "name", id, "issuer", data["issuer"], "storage_path", data["certificate_path"])
	case "cert_failed":
		m.notify("failed")
		m.log.Error("certificate: obtaining failed", append([]any{"name", id, "renewal", renewal}, present(data, "remaining", "error")...)...)
	case "cached_managed_cert":
		m.log.Info("certificate: in service", "names", data["sans"])
	}
	return nil
}

// present is the key-value pairs of data for the keys it has, non-nil,
// with "error" logged as "err" as everywhere else.
func present(data map[string]any, keys ...string) []any {
	var kv []any
	for _, k := range keys {
		if v, ok := data[k]; ok && v != nil {
			if k == "error" {
				k = "err"
			}
			kv = append(kv, k, v)
		}
	}
	return kv
}

// watchExpiry warns once a day about certificates that will expire within
// a week: renewal should have happened long before.
func (m *managed) watchExpiry(ctx context.Context) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		for _, st := range m.Status() {
			if left := time.Until(st.NotAfter); !st.NotAfter.IsZero() && left < 7*24*time.Hour {
				m.log.Warn("certificate: expiring", "name", st.Name, "not_after", st.NotAfter, "left", left.Round(time.Minute))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// addrPort splits a bound address into host and port for certmagic.
func addrPort(addr string) (string, int) {
	if addr == "" {
		return "", 0
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}
