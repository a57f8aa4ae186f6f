package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wellknownd/wellknownd/delegation"
)

// publicCAs are the ca names this file knows; anything else must be an ACME
// directory URL.
var publicCAs = []string{"letsencrypt", "letsencrypt-staging", "zerossl"}

func (v *validator) validateTLS() {
	t := v.cfg.TLS
	l := v.cfg.Listen
	v.validateWildcards()
	switch t.Mode {
	case TLSOff:
		return
	case TLSACME, TLSFiles, TLSInternal:
	default:
		v.errf("tls.mode", "%q is not a TLS mode; valid: acme, files, internal, off", t.Mode)
		return
	}
	if l.HTTPS == "" && l.Federation == "" {
		v.errf("tls.mode", "is %s, but listen.https and listen.federation are both off; nothing would use a certificate", t.Mode)
	}
	switch t.Mode {
	case TLSFiles:
		v.validateFiles()
	case TLSACME:
		v.validateACME()
	}
	v.validateStorage()
	if t.Mode == TLSInternal && t.HSTS.MaxAge > 0 {
		v.warnf("tls.hsts.max_age", "is set with tls.mode internal: a browser that does not trust the local CA can then not even click through the warning for %s", time.Duration(t.HSTS.MaxAge))
	}
}

func (v *validator) validateStorage() {
	t := v.cfg.TLS
	if !strings.HasPrefix(t.Storage, "postgres://") && !strings.HasPrefix(t.Storage, "postgresql://") {
		if t.StoragePasswordFile != "" {
			v.errf("tls.storage_password_file", "is only for a postgres:// tls.storage")
		}
		return
	}
	if t.Mode == TLSFiles {
		v.errf("tls.storage", "is a database, but tls.mode files keeps nothing in storage; remove it or use mode acme")
		return
	}
	u, err := url.Parse(t.Storage)
	switch {
	case err != nil:
		v.errf("tls.storage", "is not a URL: %v", err)
		return
	case u.Host == "" || strings.Trim(u.Path, "/") == "":
		v.errf("tls.storage", "%q needs a host and a database: postgres://USER@HOST:5432/DATABASE", u.Redacted())
		return
	}
	v.cfg.TLS.StorageKind = StoragePostgres
	if _, set := u.User.Password(); set {
		v.warnf("tls.storage", "holds a password; put it in tls.storage_password_file (or $PGPASSWORD) so that this file can stay readable")
	}
	if t.StoragePasswordFile != "" {
		if _, err := os.ReadFile(t.StoragePasswordFile); err != nil {
			v.errf("tls.storage_password_file", "cannot be read: %v", unwrapPathError(err))
		}
	}
}

func (v *validator) validateFiles() {
	t := v.cfg.TLS
	if t.CertFile == "" {
		v.errf("tls.cert_file", "is required with tls.mode files (a PEM chain, leaf first)")
	}
	if t.KeyFile == "" {
		v.errf("tls.key_file", "is required with tls.mode files (the PEM private key)")
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return
	}
	if _, err := LoadKeyPair(t.CertFile, t.KeyFile); err != nil {
		v.errf("tls.cert_file", "%s", err)
	}
}

func (v *validator) validateACME() {
	t := v.cfg.TLS
	if t.Email == "" && !t.Agree {
		v.errf("tls.email", "is required with tls.mode acme (the CA warns there before a certificate expires); or set tls.agree: true to accept the CA's terms without one")
	} else if t.Email != "" {
		if err := delegation.CheckEmail(t.Email); err != nil {
			v.errf("tls.email", "%s", err)
		}
	}
	public := slices.Contains(publicCAs, t.CA)
	if !public {
		if !strings.HasPrefix(t.CA, "https://") {
			v.errf("tls.ca", "%q is neither %s nor an ACME directory URL (https://...)", t.CA, strings.Join(publicCAs, ", "))
		} else {
			v.httpURL("tls.ca", t.CA)
		}
	}
	if t.CA == "zerossl" && t.ZeroSSLAPIKeyFile == "" {
		v.errf("tls.zerossl_api_key_file", "is required with ca: zerossl")
	}
	if t.ZeroSSLAPIKeyFile != "" && !slices.Contains(t.Challenges, ChallengeHTTP01) && !slices.Contains(t.Challenges, ChallengeDNS01) {
		// ZeroSSL's API validates by a file over HTTP or a CNAME record;
		// it has no TLS-ALPN validation.
		v.errf("tls.challenges", "ZeroSSL validates by http-01 or dns-01 (a CNAME record); add one of them")
	}
	for _, f := range []struct{ field, path string }{{"tls.ca_root", t.CARoot}, {"tls.zerossl_api_key_file", t.ZeroSSLAPIKeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			v.errf(f.field, "cannot be read: %v", unwrapPathError(err))
		}
	}
	if len(t.Challenges) == 0 {
		v.errf("tls.challenges", "is empty; list at least one of http-01, tls-alpn-01, dns-01")
	}
	for i, ch := range t.Challenges {
		field := "tls.challenges[" + strconv.Itoa(i) + "]"
		switch ch {
		case ChallengeHTTP01:
			if v.cfg.Listen.HTTP == "" {
				v.errf(field, "http-01 is answered on listen.http, which is off")
			}
		case ChallengeTLSALPN01:
			if v.cfg.Listen.HTTPS == "" {
				v.errf(field, "tls-alpn-01 is answered on listen.https, which is off")
			}
		case ChallengeDNS01:
		default:
			v.errf(field, "%q is not a challenge type; valid: http-01, tls-alpn-01, dns-01", ch)
		}
	}
	dns01 := slices.Contains(t.Challenges, ChallengeDNS01)
	v.validateDNS(dns01)
	if t.ZeroSSLAPIKeyFile != "" && dns01 && !slices.Contains(t.Challenges, ChallengeHTTP01) && t.DNS.Provider != "" && t.DNS.Provider != "cloudflare" {
		// ZeroSSL's API validates by a CNAME record, which only the
		// libdns provider (cloudflare) can write; lego's write the
		// ACME TXT record alone.
		v.errf("tls.zerossl_api_key_file", "ZeroSSL's API validates by a CNAME record, which provider %s cannot write; add http-01 to tls.challenges or use cloudflare", t.DNS.Provider)
	}
	if public {
		for i, h := range v.cfg.Hosts {
			if n, err := delegation.ParseHostname(strings.TrimPrefix(h, "*.")); err == nil && !isPublicName(n) {
				v.errf("hosts["+strconv.Itoa(i)+"]", "%q cannot get a certificate from a public CA; use tls.mode internal (or files) for local and private names", h)
			}
		}
	}
}

// PublicName reports whether a public CA could issue for n: what tls.mode
// acme needs of every name in hosts ("init" chooses its mode by it).
func PublicName(n delegation.ServerName) bool { return isPublicName(n) }

// isPublicName reports whether a public CA could issue for n: not an IP
// literal, not localhost, not a reserved or single-label name.
func isPublicName(n delegation.ServerName) bool {
	if n.IP.IsValid() {
		return false
	}
	h := strings.ToLower(n.Host)
	if !strings.Contains(h, ".") {
		return false
	}
	for _, suffix := range []string{".localhost", ".local", ".test", ".internal", ".invalid", ".example", ".home.arpa", ".lan"} {
		if strings.HasSuffix(h, suffix) {
			return false
		}
	}
	return true
}

// LoadKeyPair loads and checks a PEM certificate chain and its key: they
// must parse, match, and the leaf must not have expired.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, unwrapPathError(err))
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
	}
	if time.Now().After(pair.Leaf.NotAfter) {
		return nil, fmt.Errorf("%s expired on %s", certFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}
