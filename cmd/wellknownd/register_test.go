package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
)

func TestRegisterCommand(t *testing.T) {
	den := dendritetest.Setup(t, dendritetest.Options{ServerName: "example.com"})
	d := startDaemon(t, supervisedConfig(den), "http", "admin")
	d.waitStatus("dendrite ready", 90*time.Second, func(s statusDoc) bool { return s.UpstreamReady })
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("correct horse battery\n"), 0o600)

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"register", "-config", d.configPath, "-user", "dave", "-admin", "-password-file", pwFile}, &out, &errOut); err != nil {
		t.Fatalf("register: %v\n%s", err, errOut.String())
	}
	if out.String() != "registered @dave:example.com (admin)\n" {
		t.Fatalf("register said %q", out.String())
	}
	// Dave logs in through the edge.
	cli, _ := mautrix.NewClient("https://matrix.example.com", "", "")
	cli.Client = &http.Client{Transport: plainTransport(d.addrs["http"])}
	if _, err := cli.Login(context.Background(), &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "dave"},
		Password: "correct horse battery", StoreCredentials: true,
	}); err != nil {
		t.Fatalf("login through the edge as the registered user: %v", err)
	}

	// A wrong secret is refused, and the error says what to look at.
	wrong := filepath.Join(t.TempDir(), "dendrite.yaml")
	cfg, _ := os.ReadFile(den.ConfigPath)
	os.WriteFile(wrong, bytes.Replace(cfg, []byte(den.Secret), []byte("not-the-secret"), 1), 0o600)
	err := run(context.Background(), []string{"register", "-config", d.configPath, "-user", "mallory", "-password-file", pwFile, "-dendrite-config", wrong}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "refused the shared secret") {
		t.Fatalf("register with a wrong secret: %v", err)
	}
	// Taken names say so.
	err = run(context.Background(), []string{"register", "-config", d.configPath, "-user", "dave", "-password-file", pwFile}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "the name is taken") {
		t.Fatalf("register a taken name: %v", err)
	}

	// Registration stays closed to the public: an anonymous /register
	// through the proxy is refused.
	anon, _ := mautrix.NewClient("https://matrix.example.com", "", "")
	anon.Client = &http.Client{Transport: plainTransport(d.addrs["http"])}
	_, err = anon.RegisterDummy(context.Background(), &mautrix.ReqRegister{Username: "eve", Password: "whatever password"})
	var herr mautrix.HTTPError
	if err == nil {
		t.Fatal("anonymous registration through the proxy succeeded")
	}
	if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode != 403 {
		t.Fatalf("anonymous registration: %v, want 403", err)
	}
}
