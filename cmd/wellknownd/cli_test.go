package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// wellknownd runs the program as a user does, through main, in dir, and
// returns what it wrote to each stream and its exit status.
func wellknownd(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("wellknownd %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestEveryCommandHelp: -h, -help, --help and "help COMMAND" print what the
// command does, an example of it and its flags on standard output, and exit
// 0; "wellknownd -h" lists every command with what it does.
func TestEveryCommandHelp(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := wellknownd(t, dir, "-h")
	if code != 0 || errOut != "" {
		t.Fatalf("wellknownd -h: exit %d, stderr %q", code, errOut)
	}
	for _, c := range commands {
		if !strings.Contains(out, "\n  "+c.help.name+" ") || !strings.Contains(out, c.help.summary) {
			t.Errorf("wellknownd -h does not list %s with its summary:\n%s", c.help.name, out)
		}
	}
	for _, c := range commands {
		name := c.help.name
		for _, args := range [][]string{{name, "-h"}, {name, "-help"}, {name, "--help"}, {"help", name}} {
			out, errOut, code := wellknownd(t, dir, args...)
			if code != 0 || errOut != "" {
				t.Errorf("wellknownd %s: exit %d, stderr %q; want exit 0 and the help on stdout", strings.Join(args, " "), code, errOut)
				continue
			}
			if !strings.HasPrefix(out, "Usage: wellknownd "+name) || !strings.Contains(out, "\nExamples:\n  wellknownd "+name) && !strings.Contains(out, "\nExamples:\n  pass show") {
				t.Errorf("wellknownd %s printed no usage line and example:\n%s", strings.Join(args, " "), out)
			}
			if name != "version" && !strings.Contains(out, "\nFlags:\n  -") {
				t.Errorf("wellknownd %s lists no flags:\n%s", strings.Join(args, " "), out)
			}
		}
	}
	out, _, _ = wellknownd(t, dir, "validate", "-h")
	for _, want := range []string{"Usage: wellknownd validate [flags]\n", "in the\norder of the file's lines", "  wellknownd validate -config /etc/wellknownd/wellknownd.yaml", "  -config string\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("validate -h lacks %q:\n%s", want, out)
		}
	}
	if out, _, _ := wellknownd(t, dir, "check", "-h"); !strings.HasPrefix(out, "Usage: wellknownd check [flags] SERVER_NAME\n") {
		t.Errorf("check -h usage line:\n%s", out)
	}
}

// TestDidYouMean: a misspelled command or flag gets the nearest one, with
// exit 2; a word near nothing gets where the list is.
func TestDidYouMean(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serv"}, `wellknownd: unknown command "serv"; did you mean serve?` + "\n"},
		{[]string{"valdiate"}, `wellknownd: unknown command "valdiate"; did you mean validate?` + "\n"},
		{[]string{"healtcheck"}, `wellknownd: unknown command "healtcheck"; did you mean healthcheck?` + "\n"},
		{[]string{"reg"}, `wellknownd: unknown command "reg"; did you mean register?` + "\n"},
		{[]string{"frobnicate"}, `wellknownd: unknown command "frobnicate" (wellknownd -h lists the commands)` + "\n"},
		{[]string{"serve", "-confg", "x.yaml"}, "wellknownd: serve: flag provided but not defined: -confg; did you mean -config?\n"},
		{[]string{"init", "--server-nmae", "example.com"}, "wellknownd: init: flag provided but not defined: -server-nmae; did you mean -server-name?\n"},
		{[]string{"-config", "w.yaml", "validate"}, "wellknownd: the command comes before its flags: wellknownd validate -config w.yaml\n"},
		{[]string{"validate", "-frobnicate"}, "wellknownd: validate: flag provided but not defined: -frobnicate (wellknownd validate -h lists the flags)\n"},
	} {
		out, errOut, code := wellknownd(t, dir, tc.args...)
		if code != 2 || errOut != tc.want || out != "" {
			t.Errorf("wellknownd %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
}

// TestStrayArgument: an argument a command does not take is refused (exit
// 2) with the flag it was probably meant for; flags after a command's own
// argument are read as flags.
func TestStrayArgument(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/settings.conf", exampleConfig)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"validate", "wellknownd.yaml"}, `wellknownd: validate: unexpected argument "wellknownd.yaml": validate takes no arguments, only flags; did you mean -config wellknownd.yaml?` + "\n"},
		// An existing file is a configuration whatever its name.
		{[]string{"serve", "settings.conf"}, `wellknownd: serve: unexpected argument "settings.conf": serve takes no arguments, only flags; did you mean -config settings.conf?` + "\n"},
		{[]string{"reload", "config=/etc/w.yaml"}, `wellknownd: reload: unexpected argument "config=/etc/w.yaml": reload takes no arguments, only flags; did you mean -config /etc/w.yaml?` + "\n"},
		{[]string{"register", "alice"}, `wellknownd: register: unexpected argument "alice": register takes no arguments, only flags; did you mean -user alice?` + "\n"},
		{[]string{"init", "example.com"}, `wellknownd: init: unexpected argument "example.com": init takes no arguments, only flags; did you mean -server-name example.com?` + "\n"},
		{[]string{"serve", "extra"}, `wellknownd: serve: unexpected argument "extra": serve takes no arguments, only flags (wellknownd serve -h lists them)` + "\n"},
		{[]string{"check", "example.com", "example.org"}, `wellknownd: check: unexpected argument "example.org": check tests one server name (wellknownd check -h lists them)` + "\n"},
		{[]string{"init"}, "wellknownd: init: -server-name is required, e.g. wellknownd init -server-name example.com (wellknownd init -h says more)\n"},
	} {
		out, errOut, code := wellknownd(t, dir, tc.args...)
		if code != 2 || errOut != tc.want || out != "" {
			t.Errorf("wellknownd %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
	// "check example.com -json": -json is a flag, not a second name.
	var out bytes.Buffer
	err := run(context.Background(), []string{"check", "example.com", "-json", "-timeout", "2s"}, &out, &bytes.Buffer{})
	if !errors.Is(err, errReported) || !strings.HasPrefix(out.String(), "{") {
		t.Fatalf("check example.com -json: %v\n%s", err, out.String())
	}
}

// lineOrderConfig has an error on lines 3, 10 and 20, which the checks
// find in another order: line 20 while decoding, line 3 with the
// delegation, line 10 with the listeners.
const lineOrderConfig = `server_name: example.com
delegation:
  server: https://matrix.example.com
  client_base_url: https://matrix.example.com
hosts: [example.com, matrix.example.com]
listen:
  http: 127.0.0.1:0
  https: ""
  federation: ""
  admin: 127.0.0.1:99999
tls:
  mode: "off"
log:
  format: text
upstream:
  url: http://127.0.0.1:8008
  # the homeserver's own listener
  max_body: 100MiB
supervise: []
colour: blue
`

// TestValidateInLineOrder: validate prints a file's problems in the order
// of its lines, whatever order they were found in, and exits 1.
func TestValidateInLineOrder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/wellknownd.yaml", lineOrderConfig)
	out, errOut, code := wellknownd(t, dir, "validate")
	want := `wellknownd.yaml:3: delegation.server: has a scheme ("https://"); a server name is host[:port], e.g. matrix.example.com
wellknownd.yaml:10: listen.admin: "127.0.0.1:99999" has port "99999"; a port is a number from 0 to 65535
wellknownd.yaml:20: colour: unknown field; valid fields here: server_name, delegation, hosts, base_domain, listen, tls, upstream, routes, sliding_sync, compression, limits, shutdown_timeout, log, self_check, supervise
`
	if code != 1 || out != want || errOut != "wellknownd: wellknownd.yaml: 3 errors\n" {
		t.Fatalf("validate: exit %d\nstdout:\n%s\nwant:\n%s\nstderr: %q", code, out, want, errOut)
	}
	// serve refuses to start with the same list, in the same order.
	_, errOut, code = wellknownd(t, dir, "serve")
	if code != 1 || errOut != want+"wellknownd: wellknownd.yaml: 3 errors; nothing started\n" {
		t.Fatalf("serve: exit %d, stderr:\n%s", code, errOut)
	}
}
