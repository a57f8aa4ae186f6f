package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/wellknownd/wellknownd/fedcheck"
)

// resolveFlags collects -resolve host:port:addr, like curl's --resolve.
type resolveFlags map[string]string

func (r resolveFlags) String() string { return fmt.Sprint(map[string]string(r)) }

func (r resolveFlags) Set(v string) error {
	// host:port:addr, where addr may be [v6]:port or v4:port or a bare IP
	// (the port then stays).
	host, rest, ok := strings.Cut(v, ":")
	if strings.HasPrefix(v, "[") {
		end := strings.Index(v, "]:")
		if end < 0 {
			return fmt.Errorf("%q is not host:port:addr", v)
		}
		host, rest, ok = v[:end+1], v[end+2:], true
	}
	port, addr, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || host == "" || port == "" || addr == "" {
		return fmt.Errorf("%q is not host:port:addr, e.g. matrix.example.com:443:127.0.0.1", v)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), port)
	}
	r[net.JoinHostPort(strings.Trim(host, "[]"), port)] = addr
	return nil
}

var checkHelp = commandHelp{
	name:    "check",
	summary: "test a server's federation and client discovery, and say how to fix what fails",
	args:    "SERVER_NAME",
	about: `Tests SERVER_NAME as a remote homeserver and a client would: the
/.well-known/matrix documents, SRV records, each address of the delegated host,
the certificate and its names, the federation key fetch and the client API.
Each check that fails says why and how to fix it. Exits 0 when federation and
client discovery work, 1 otherwise. It works on any server, not only this one.`,
	examples: []string{
		"wellknownd check example.com",
		"wellknownd check -json example.com",
		"wellknownd check -resolve matrix.example.com:443:192.0.2.10 example.com   # before DNS points here",
	},
}

// runCheck tests a server as a remote homeserver and a client would.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(&checkHelp, stdout)
	asJSON := fs.Bool("json", false, "Print the whole report as JSON (the federation tester's fields and every check) instead of lines for people.")
	resolve := resolveFlags{}
	fs.Var(resolve, "resolve", "Connect to ADDR for HOST:PORT, as HOST:PORT:ADDR (like curl); repeat it. Tests a server before DNS points at it.")
	caFile := fs.String("ca-file", "", "Trust the CA certificates in this PEM file instead of the system's (a private or test CA).")
	timeout := fs.Duration("timeout", 10*time.Second, "Give up on each request after this long.")
	names, err := fs.parse(args)
	if err != nil {
		return err
	}
	switch {
	case len(names) == 0:
		return usageError{"check: give the server name to test, e.g. wellknownd check example.com"}
	case len(names) > 1:
		return fs.stray(names[1], "tests one server name")
	}
	opts := fedcheck.Options{Resolve: resolve, Timeout: *timeout}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("-ca-file: %w", err)
		}
		opts.Roots = x509.NewCertPool()
		if !opts.Roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca-file %s holds no PEM certificate", *caFile)
		}
	}
	report := fedcheck.Run(ctx, names[0], opts)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(report)
	} else {
		printReport(stdout, report)
	}
	if !report.OK() {
		return errReported
	}
	return nil
}

func printReport(w io.Writer, r *fedcheck.Report) {
	for _, c := range r.Checks {
		mark := "✓"
		switch {
		case c.Skipped:
			mark = "-"
		case !c.OK:
			mark = "✗"
		}
		line := mark + " " + c.Name
		if c.Detail != "" && (c.OK || c.Skipped) {
			line += ": " + c.Detail
		}
		if !c.OK && !c.Skipped {
			line += ": " + c.Cause
		}
		fmt.Fprintln(w, line)
		if !c.OK && !c.Skipped && c.Fix != "" {
			fmt.Fprintln(w, "    fix: "+c.Fix)
		}
	}
	verdict := func(ok bool) string {
		if ok {
			return "OK"
		}
		return "FAILED"
	}
	fmt.Fprintf(w, "federation: %s, client discovery: %s\n", verdict(r.FederationOK), verdict(r.ClientOK))
}
