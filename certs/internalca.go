package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// localCA is a certificate authority on this machine: a root created once
// and kept under storage, which issues short-lived leaves for hosts. It is
// a certmagic Issuer, so storage, renewal and hot-swap work as for ACME.
type localCA struct {
	root     *x509.Certificate
	key      crypto.Signer
	rootPath string
}

// Lifetimes: the root outlives any try-out; leaves live a month and
// certmagic renews them when a third is left.
const (
	rootLifetime = 10 * 365 * 24 * time.Hour
	leafLifetime = 30 * 24 * time.Hour
)

func newInternal(opts Options) (Source, error) {
	st, err := openStorage(opts)
	if err != nil {
		return nil, err
	}
	var ca *localCA
	if st.pg != nil {
		// One CA for every edge that shares the storage.
		ctx, cancel := context.WithTimeout(context.Background(), 2*lockLease)
		ca, err = loadOrCreateSharedCA(ctx, st.pg)
		cancel()
	} else {
		ca, err = loadOrCreateCA(filepath.Join(st.dir, "internal-ca"))
	}
	if err != nil {
		st.close()
		return nil, err
	}
	hint := []any{"root", ca.rootPath}
	if ex := curlExample(ca.rootPath, opts.Hosts, opts.TLSAddr); ex != "" {
		hint = append(hint, "example", ex)
	}
	opts.Log.Info("internal CA: trust this root to verify the certificates", hint...)
	m := newManaged(opts, st)
	m.magic.Issuers = []certmagic.Issuer{ca}
	m.roots = x509.NewCertPool()
	m.roots.AddCert(ca.root)
	return m, nil
}

// curlExample is a command that fetches a document from this machine's
// listen.https (bound at tlsAddr) trusting the internal CA: the port is the
// one bound, and --resolve sends the name to the listener's own address,
// since a name the internal CA serves (example.test) rarely resolves to
// this machine. "" when there is no HTTPS listener or no plain name.
func curlExample(root string, hosts []string, tlsAddr string) string {
	ap, err := netip.ParseAddrPort(tlsAddr)
	if err != nil {
		return ""
	}
	i := slices.IndexFunc(hosts, func(h string) bool { return !strings.Contains(h, "*") })
	if i < 0 {
		return ""
	}
	host, port := hosts[i], strconv.Itoa(int(ap.Port()))
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		// Bound to every address: loopback is one of them.
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	url := "https://" + host
	if port != "443" {
		url += ":" + port
	}
	resolveAddr := ip.String()
	if ip.Is6() {
		resolveAddr = "[" + resolveAddr + "]"
	}
	return "curl --cacert " + root + " --resolve " + host + ":" + port + ":" + resolveAddr + " " + url + "/.well-known/matrix/client"
}

// loadOrCreateCA reads root.crt and root.key from dir, or creates them.
func loadOrCreateCA(dir string) (*localCA, error) {
	certPath, keyPath := filepath.Join(dir, "root.crt"), filepath.Join(dir, "root.key")
	ca := &localCA{rootPath: certPath}
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	if certErr == nil && keyErr == nil {
		if err := ca.parse(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("internal CA in %s: %w", dir, err)
		}
		return ca, nil
	}
	if !errors.Is(certErr, os.ErrNotExist) || !errors.Is(keyErr, os.ErrNotExist) {
		return nil, fmt.Errorf("internal CA in %s is incomplete (root.crt: %v; root.key: %v); remove both to create a new one", dir, certErr, keyErr)
	}
	certPEM, keyPEM, err := newRoot()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("internal CA: writing its key: %w", err)
	}
	if err := writeNew(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("internal CA: writing its root: %w", err)
	}
	return ca, ca.parse(certPEM, keyPEM)
}

// Keys of the internal CA in a shared storage.
const (
	caRootKey  = "internal-ca/root.crt"
	caKeyKey   = "internal-ca/root.key"
	caLockName = "internal-ca"
)

// loadOrCreateSharedCA reads the CA from a storage that several edges
// share, or creates it there, under the storage's lock so that two edges
// starting at once make one CA between them.
func loadOrCreateSharedCA(ctx context.Context, st certmagic.Storage) (*localCA, error) {
	if err := st.Lock(ctx, caLockName); err != nil {
		return nil, fmt.Errorf("internal CA: %w", err)
	}
	defer st.Unlock(context.WithoutCancel(ctx), caLockName)
	ca := &localCA{rootPath: "tls.storage:" + caRootKey}
	certPEM, certErr := st.Load(ctx, caRootKey)
	keyPEM, keyErr := st.Load(ctx, caKeyKey)
	switch {
	case certErr == nil && keyErr == nil:
		if err := ca.parse(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("internal CA in tls.storage: %w", err)
		}
		return ca, nil
	case !errors.Is(certErr, fs.ErrNotExist) || !errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("internal CA in tls.storage is incomplete or unreadable (root.crt: %v; root.key: %v)", certErr, keyErr)
	}
	certPEM, keyPEM, err := newRoot()
	if err != nil {
		return nil, err
	}
	if err := st.Store(ctx, caKeyKey, keyPEM); err != nil {
		return nil, fmt.Errorf("internal CA: storing its key: %w", err)
	}
	if err := st.Store(ctx, caRootKey, certPEM); err != nil {
		return nil, fmt.Errorf("internal CA: storing its root: %w", err)
	}
	return ca, ca.parse(certPEM, keyPEM)
}

// newRoot makes a root certificate and its key, PEM-encoded.
func newRoot() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "wellknownd local CA (" + host + ")", Organization: []string{"wellknownd"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(rootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func (ca *localCA) parse(certPEM, keyPEM []byte) error {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return errors.New("root.crt or root.key is not PEM")
	}
	root, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return errors.New("root.key is not a signing key")
	}
	ca.root, ca.key = root, signer
	return nil
}

// Issue signs a leaf for the CSR's names. It implements certmagic.Issuer.
func (ca *localCA) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: firstName(csr)},
		DNSNames:     csr.DNSNames,
		IPAddresses:  csr.IPAddresses,
		NotBefore:    time.Now().Add(-5 * time.Minute),
		NotAfter:     time.Now().Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("internal CA: signing: %w", err)
	}
	return &certmagic.IssuedCertificate{Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// IssuerKey implements certmagic.Issuer: certificates of this CA are
// stored apart from ACME ones.
func (ca *localCA) IssuerKey() string { return "wellknownd-internal" }

func firstName(csr *x509.CertificateRequest) string {
	if len(csr.DNSNames) > 0 {
		return csr.DNSNames[0]
	}
	if len(csr.IPAddresses) > 0 {
		return net.IP(csr.IPAddresses[0]).String()
	}
	return csr.Subject.CommonName
}

func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n
}
