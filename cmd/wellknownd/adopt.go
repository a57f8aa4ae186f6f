package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/deploy"
	"github.com/wellknownd/wellknownd/fedcheck"
)

var adoptHelp = commandHelp{
	name:    "adopt",
	summary: "put wellknownd in front of a Dendrite that already runs, keeping its identity",
	about: `Reads the dendrite.yaml of a Dendrite that already runs (its server name and
signing key stay as they are) and the documents its server name serves today,
then writes a wellknownd.yaml and either a compose override (-compose) or a
systemd unit (Dendrite on this host). It prints what it will write, what
changes once started, what it never touches, and how to go back; it never
writes Dendrite's files. -dry-run prints the same and writes nothing.`,
	examples: []string{
		"wellknownd adopt -dendrite-config ./config/dendrite.yaml -compose ./docker-compose.yml -dry-run",
		"wellknownd adopt -dendrite-config /etc/dendrite/dendrite.yaml -tls files -cert-file /etc/ssl/fullchain.pem -key-file /etc/ssl/key.pem",
	},
	bare: "dendrite-config",
}

// runAdopt puts wellknownd in front of a Dendrite that already runs,
// keeping its identity: see deploy.Adopt. It prints what it will write and
// change, then writes; it never writes Dendrite's files.
func runAdopt(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(&adoptHelp, stdout)
	var (
		o    deploy.AdoptOptions
		c    deploy.ComposeOptions
		host deploy.HostOptions
	)
	fs.StringVar(&o.DendriteConfig, "dendrite-config", "", "The dendrite.yaml the homeserver runs with, e.g. ./config/dendrite.yaml. Required. It is read, never written.")
	fs.StringVar(&o.ServerName, "server-name", "", "The server name you expect dendrite.yaml to have; adopt stops when it has another.")
	fs.StringVar(&o.Delegate, "delegate", "", "Where the homeserver is served, HOST[:PORT], e.g. matrix.example.com or matrix.example.com:8448; it replaces the documents served today. Default: keep what SERVER_NAME/.well-known/matrix/server and /client serve today (fetched over HTTPS, as remote servers and clients do), else dendrite.yaml's global.well_known_server_name or well_known_client_name when they name another host.")
	resolve := resolveFlags{}
	fs.Var(resolve, "resolve", "Fetch today's documents from ADDR for HOST:PORT, as HOST:PORT:ADDR (like curl); repeat it. For DNS that already points at this machine, or tests.")
	caFile := fs.String("ca-file", "", "Trust the CA certificates in this PEM file, instead of the system's, when fetching today's documents.")
	fs.StringVar(&c.File, "compose", "", "The compose file that runs Dendrite. adopt writes wellknownd.yaml and an override file beside it. Without it, Dendrite runs on this host and a systemd unit fronts it at -upstream.")
	fs.StringVar(&c.Service, "service", "", "Dendrite's compose service, when adopt cannot tell it by its image or its mount of dendrite.yaml's directory.")
	fs.StringVar(&host.Upstream, "upstream", "http://127.0.0.1:8008", "Without -compose: Dendrite's plain HTTP listener on this host.")
	fs.StringVar(&host.Dir, "dir", "/var/lib/wellknownd", "Without -compose: write wellknownd.yaml and the unit into this directory (as init does).")
	fs.StringVar(&o.TLSMode, "tls", "acme", "Where certificates come from: acme (wellknownd obtains and renews them itself), files (-cert-file and -key-file, e.g. what acme.sh installs) or internal (a local CA, for trying it out).")
	fs.StringVar(&o.CertFile, "cert-file", "", "With -tls files: the PEM certificate chain, which must name the server name's host and the delegated host.")
	fs.StringVar(&o.KeyFile, "key-file", "", "With -tls files: the certificate's PEM private key.")
	fs.StringVar(&o.Email, "email", "", "With -tls acme: the ACME account's e-mail. Default: admin@SERVER_NAME.")
	fs.StringVar(&o.Site, "site", "", "The web server (http:// or https:// URL) that answers on the server name's host besides the documents, e.g. the project's web site; wellknownd proxies to it. Without it, that host answers 404 outside /.well-known/matrix.")
	fs.StringVar(&c.Source, "src", "", "With -compose: a clone of wellknownd to build the image from. Default: the public repository.")
	dryRun := fs.Bool("dry-run", false, "Print what adopt would write and change, and write nothing.")
	if err := fs.parseFlags(args); err != nil {
		return err
	}
	if o.DendriteConfig == "" {
		return fs.required("dendrite-config", "wellknownd adopt -dendrite-config ./config/dendrite.yaml")
	}
	// A flag of the other mode is refused rather than ignored: -dir with
	// -compose would look as if it chose where the files go.
	modeFlags, why := []string{"service", "src"}, "only with -compose"
	if c.File != "" {
		modeFlags, why = []string{"upstream", "dir"}, "for a Dendrite on this host, not with -compose (its files go beside the compose file, and Dendrite is reached as its service)"
	}
	var misplaced error
	fs.Visit(func(f *flag.Flag) {
		if misplaced == nil && slices.Contains(modeFlags, f.Name) {
			misplaced = usageError{fmt.Sprintf("adopt: -%s is %s", f.Name, why)}
		}
	})
	if misplaced != nil {
		return misplaced
	}
	if c.File != "" {
		o.Compose = &c
	} else {
		self, err := os.Executable()
		if err != nil || strings.Contains(self, "go-build") {
			self = "/usr/local/bin/wellknownd"
		}
		host.WellknowndBin = self
		o.Host = &host
	}
	fetchOpts := fedcheck.Options{Resolve: resolve, Timeout: 10 * time.Second}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("-ca-file: %w", err)
		}
		fetchOpts.Roots = x509.NewCertPool()
		if !fetchOpts.Roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca-file %s holds no PEM certificate", *caFile)
		}
	}
	o.Fetch = func(name delegation.ServerName) (server, client fedcheck.Published) {
		return fedcheck.FetchPublished(ctx, name, fetchOpts)
	}
	a, err := deploy.Adopt(o)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "wellknownd adopt: %s, served at %s\n\nIt writes:\n", a.ServerName, a.Delegate)
	for _, f := range a.Files {
		fmt.Fprintf(stdout, "  %s\n", filepath.Join(a.Dir, f.Path))
	}
	fmt.Fprintln(stdout, "\nIt serves:")
	for _, d := range a.Documents {
		fmt.Fprintf(stdout, "  %s\n    %s\n", d.URL, d.Body)
		for _, n := range d.Notes {
			fmt.Fprintf(stdout, "    - %s\n", n)
		}
	}
	list(stdout, "Once started, this changes:", a.Changes)
	list(stdout, "It keeps, and never writes:", a.Kept)
	if len(a.DendriteEdits) > 0 {
		fmt.Fprintln(stdout, "\nIn Dendrite's configuration, change (adopt does not edit it):")
		for _, p := range a.DendriteEdits {
			fmt.Fprintf(stdout, "  %s\n", p)
		}
	}
	list(stdout, "In DNS:", a.DNS)
	for _, w := range a.Warnings {
		fmt.Fprintln(stdout, "\nwarning: "+w)
	}
	if !*dryRun {
		if err := deploy.Write(a.Dir, a.Files, false); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		for _, f := range a.Files {
			fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(a.Dir, f.Path))
		}
	}
	// -dry-run prints the same steps: what the real run will ask of the
	// operator is part of the plan. The test suite runs these lines: keep
	// the headings and the indent.
	steps(stdout, "First, as root:", a.Before)
	steps(stdout, "Then start it:", a.Start)
	steps(stdout, "To go back to how it was:", a.Rollback)
	if *dryRun {
		fmt.Fprintln(stdout, "\nNothing was written (-dry-run).")
	}
	return nil
}

func list(w io.Writer, heading string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintln(w, "\n"+heading)
	for _, s := range items {
		fmt.Fprintln(w, "  - "+s)
	}
}

func steps(w io.Writer, heading string, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\n"+heading)
	for _, s := range lines {
		fmt.Fprintln(w, "  "+s)
	}
}
