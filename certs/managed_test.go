package certs

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestNameAddedDuringAFaultIsRetried: a name a reload adds while the
// storage cannot take its certificate is not forgotten: the reload says
// so, the source retries with backoff, and the name gets its certificate
// once the fault is gone, with no further reload.
func TestNameAddedDuringAFaultIsRetried(t *testing.T) {
	storage := t.TempDir()
	src, err := New(Options{
		TLS:   config.TLS{Mode: config.TLSInternal, Storage: storage},
		Hosts: []string{"a.test"}, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := src.TLSConfig()
	conn, peer := net.Pipe() // certmagic logs the client's address
	defer conn.Close()
	defer peer.Close()
	has := func(name string) bool {
		_, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: name, Conn: conn})
		return err == nil
	}
	if !has("a.test") {
		t.Fatal("no certificate for the first name")
	}
	// The fault: where b.test's certificate goes is a file, which no
	// directory can be made over (root included).
	issuers, _ := filepath.Glob(filepath.Join(storage, "certificates", "*"))
	if len(issuers) != 1 {
		t.Fatalf("issuer directories: %v", issuers)
	}
	block := filepath.Join(issuers[0], "b.test")
	if err := os.WriteFile(block, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = src.SetHosts(ctx, []string{"a.test", "b.test"})
	if err == nil || !strings.Contains(err.Error(), "b.test") || !strings.Contains(err.Error(), "retrying") {
		t.Fatalf("SetHosts during the fault: %v", err)
	}
	if has("b.test") {
		t.Fatal("a certificate for b.test despite the fault")
	}
	os.Remove(block)
	wait.True(t, "b.test's certificate after the fault", 30*time.Second, func() bool { return has("b.test") })
	if !has("a.test") {
		t.Error("a.test lost its certificate")
	}
}
