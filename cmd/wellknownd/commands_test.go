package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/freeport"
)

func TestValidateCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	good := writeConfig(t, exampleConfig)
	if err := run(context.Background(), []string{"validate", "-config", good}, &out, &errOut); err != nil {
		t.Fatalf("validate good config: %v\n%s", err, out.String())
	}
	if out.String() != good+": valid\n" {
		t.Fatalf("validate output %q", out.String())
	}

	out.Reset()
	bad := writeConfig(t, strings.NewReplacer(
		"server: matrix.example.com:443", "server: https://matrix.example.com",
		"role: m.role.admin", "role: boss",
		"max_age: 2h", "max_age: 2h\n  colour: blue",
	).Replace(exampleConfig))
	err := run(context.Background(), []string{"validate", "-config", bad}, &out, &errOut)
	if err == nil || err.Error() != bad+": 3 errors" {
		t.Fatalf("validate bad config: err = %v", err)
	}
	want := bad + `:3: delegation.server: has a scheme ("https://"); a server name is host[:port], e.g. matrix.example.com
` + bad + `:10: delegation.support.contacts[0].role: "boss" is neither m.role.admin, m.role.security nor namespaced (e.g. org.example.role.billing)
` + bad + `:13: delegation.colour: unknown field; valid fields here: server, client_base_url, identity_server, client_extra, support, max_age
`
	if out.String() != want {
		t.Fatalf("validate printed:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	// Take a free port, then point the bad config at it: nothing may listen.
	addr := freeport.Addr(t)
	bad := writeConfig(t, strings.Replace(strings.Replace(exampleConfig, "http: 127.0.0.1:0", "http: "+addr, 1), "client_base_url: https://matrix.example.com", "client_base_url: matrix.example.com", 1))
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "-config", bad}, &bytes.Buffer{}, &errOut)
	if err == nil || !strings.Contains(err.Error(), "1 error; nothing started") {
		t.Fatalf("serve with bad config: %v", err)
	}
	if !strings.Contains(errOut.String(), bad+":4: delegation.client_base_url:") {
		t.Fatalf("serve did not name file, line and field:\n%s", errOut.String())
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("something listens on %s after a refused start", addr)
	}
}

func TestBuiltInConfigAndDefaultFile(t *testing.T) {
	t.Chdir(t.TempDir())
	var out bytes.Buffer
	if err := run(context.Background(), []string{"validate"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("validate with no config: %v", err)
	}
	if !strings.HasSuffix(out.String(), "(built-in config): valid\n") {
		t.Fatalf("built-in validate output: %q", out.String())
	}
	// ./wellknownd.yaml, when present, wins over the built-in config.
	writeFile(t, "wellknownd.yaml", "server_name: [\n")
	out.Reset()
	err := run(context.Background(), []string{"validate"}, &out, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(out.String(), "wellknownd.yaml:") {
		t.Fatalf("validate did not read ./wellknownd.yaml: %v %q", err, out.String())
	}
}

func TestUsageAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "wellknownd ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
	var ue usageError
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errOut); !errors.As(err, &ue) {
		t.Fatalf("unknown command: %v", err)
	}
	if err := run(context.Background(), nil, &out, &errOut); !errors.As(err, &ue) {
		t.Fatalf("no command: %v", err)
	}
	if err := run(context.Background(), []string{"serve", "-log-format", "xml"}, &out, &errOut); !errors.As(err, &ue) {
		t.Fatalf("bad -log-format: %v", err)
	}
	if err := run(context.Background(), []string{"serve", "extra"}, &out, &errOut); !errors.As(err, &ue) {
		t.Fatalf("stray argument: %v", err)
	}
}
