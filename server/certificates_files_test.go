package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

// selfSigned writes a certificate for names and its key as PEM files and
// returns the certificate.
func selfSigned(t *testing.T, certFile, keyFile string, serial int64, names ...string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	// Renewal tools write new files and rename them over the old ones.
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFilesModeSwapsAndKeepsOnCorruption(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "key.pem")
	a := selfSigned(t, certFile, keyFile, 1001, "example.com", "matrix.example.com")
	tlsPort := freeport.Port(t)
	startEdge(t, edgeconf.New(edgeconf.Listen("", fmt.Sprintf("127.0.0.1:%d", tlsPort), "", ""), edgeconf.Files(certFile, keyFile)), onListeners, withOptions(WithFilePollInterval(20*time.Millisecond)))
	addr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	pool := func(c *x509.Certificate) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(c); return p }
	waitCert(t, addr, "example.com", pool(a))

	// A renewed pair on disk: new handshakes see it.
	b := selfSigned(t, certFile, keyFile, 1002, "example.com", "matrix.example.com")
	got := waitCert(t, addr, "matrix.example.com", pool(b))
	if got.SerialNumber.Int64() != 1002 {
		t.Fatalf("serial %s after the swap", got.SerialNumber)
	}

	// A corrupt certificate, then a certificate with a key that is not its
	// own: the pair in service stays.
	writeAtomic(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"))
	time.Sleep(200 * time.Millisecond)
	if c, err := handshake(addr, "example.com", pool(b)); err != nil || c.SerialNumber.Int64() != 1002 {
		t.Fatalf("after a corrupt replacement: %v %v", c, err)
	}
	otherDir := t.TempDir()
	selfSigned(t, filepath.Join(otherDir, "c.pem"), filepath.Join(otherDir, "k.pem"), 1003, "example.com")
	certC, _ := os.ReadFile(filepath.Join(otherDir, "c.pem"))
	writeAtomic(t, certFile, certC) // key.pem still belongs to b
	time.Sleep(200 * time.Millisecond)
	if c, err := handshake(addr, "example.com", pool(b)); err != nil || c.SerialNumber.Int64() != 1002 {
		t.Fatalf("after a mismatched replacement: %v %v", c, err)
	}
}

// TestFilesModeReloadPicksUpRenewal: a reload (SIGHUP, acme.sh's
// --reloadcmd) serves a renewed pair at once, without waiting for the poll.
func TestFilesModeReloadPicksUpRenewal(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "key.pem")
	a := selfSigned(t, certFile, keyFile, 2001, "example.com", "matrix.example.com")
	tlsPort := freeport.Port(t)
	cfgYAML := edgeconf.New(edgeconf.Listen("", fmt.Sprintf("127.0.0.1:%d", tlsPort), "", ""), edgeconf.Files(certFile, keyFile))
	edge := startEdge(t, cfgYAML, onListeners, withOptions(WithFilePollInterval(time.Hour)))
	addr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	pool := func(c *x509.Certificate) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(c); return p }
	waitCert(t, addr, "example.com", pool(a))

	b := selfSigned(t, certFile, keyFile, 2002, "example.com", "matrix.example.com")
	if c, err := handshake(addr, "example.com", pool(a)); err != nil || c.SerialNumber.Int64() != 2001 {
		t.Fatalf("before the reload, with an hour's poll: %v %v", c, err)
	}
	cfg, _ := config.Parse("files.yaml", []byte(cfgYAML))
	if err := edge.srv.Reload(context.Background(), func() (*config.Config, error) { return cfg, nil }); err != nil {
		t.Fatal(err)
	}
	if c, err := handshake(addr, "example.com", pool(b)); err != nil || c.SerialNumber.Int64() != 2002 {
		t.Fatalf("after the reload: %v %v", c, err)
	}
}
