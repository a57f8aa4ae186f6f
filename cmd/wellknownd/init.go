package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/deploy"
)

var initHelp = commandHelp{
	name:    "init",
	summary: "write a complete deployment: wellknownd.yaml, Dendrite's config and key, unit, compose",
	about: `Writes everything a new homeserver needs into one directory: wellknownd.yaml
(which supervises Dendrite), Dendrite's dendrite.yaml, its signing key and
registration secret, a systemd unit and a compose file; then prints the steps
to start it with systemd or Docker. It writes nothing when any of its files is
there already, unless -force (which keeps the signing key and secrets).`,
	examples: []string{
		"wellknownd init -server-name example.com -delegate matrix.example.com",
		"wellknownd init -server-name example.com -dir ./deploy -postgres",
		"wellknownd init -server-name example.test -dir /tmp/try -tls internal   # try it out locally",
	},
	bare: "server-name",
}

// runInit writes a complete deployment: see package deploy.
func runInit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(&initHelp, stdout)
	serverName := fs.String("server-name", "", "The Matrix server name, the part after the colon in @alice:example.com. Required.")
	delegate := fs.String("delegate", "", "The host that serves the homeserver, e.g. matrix.example.com; the server name itself when left out.")
	dir := fs.String("dir", "/var/lib/wellknownd", "Write the deployment into this directory. The generated unit runs as a dynamic user with the directory as its StateDirectory when it is /var/lib/NAME, else as the system user wellknownd that owns it.")
	email := fs.String("email", "", "The ACME account's e-mail (certificate expiry warnings go there). Default: admin@SERVER_NAME.")
	postgres := fs.Bool("postgres", false, "Run Dendrite on the system's PostgreSQL (a postgres-init.sql is written) instead of SQLite files.")
	dendriteBin := fs.String("dendrite-bin", "", "The dendrite binary to supervise. Default: dendrite on $PATH, else /usr/local/bin/dendrite.")
	dendriteAddr := fs.String("dendrite-addr", "127.0.0.1:8008", "The address Dendrite's HTTP listener binds, on loopback.")
	force := fs.Bool("force", false, "Rewrite files that exist. The signing key, the registration secret and the database password already there are kept, never replaced. Without it, init writes nothing when any of its files is there.")
	tlsMode := fs.String("tls", "", "Where certificates come from: acme (a public CA; wellknownd obtains and renews them), files (-cert-file and -key-file) or internal (a local CA, for trying it out). Default: acme, or internal when a name cannot get a public certificate (localhost, .test, a single label).")
	certFile := fs.String("cert-file", "", "With -tls files: the PEM certificate chain, which must name the server name and the delegated host.")
	keyFile := fs.String("key-file", "", "With -tls files: the certificate's PEM private key.")
	src := fs.String("src", "", "A clone of wellknownd for docker compose to build the image from (written to compose/.env). Default: the public repository.")
	if err := fs.parseFlags(args); err != nil {
		return err
	}
	if *serverName == "" {
		return fs.required("server-name", "wellknownd init -server-name example.com")
	}
	if *delegate == "" {
		*delegate = *serverName
	}
	if _, err := delegation.ParseHostname(*serverName); err != nil {
		return fmt.Errorf("-server-name %q %w", *serverName, err)
	}
	if _, err := delegation.ParseHostname(*delegate); err != nil {
		return fmt.Errorf("-delegate %q %w", *delegate, err)
	}
	if *email == "" {
		*email = "admin@" + *serverName
	}
	if *dendriteBin == "" {
		*dendriteBin = "/usr/local/bin/dendrite"
		if p, err := exec.LookPath("dendrite"); err == nil {
			*dendriteBin, _ = filepath.Abs(p)
		}
	}
	self, err := os.Executable()
	if err != nil || strings.Contains(self, "go-build") {
		self = "/usr/local/bin/wellknownd"
	}
	var keep deploy.Existing
	if *force {
		if keep, err = deploy.ReadExisting(*dir); err != nil {
			return fmt.Errorf("%w; nothing was written", err)
		}
	}
	d, err := deploy.Generate(deploy.Options{
		ServerName: *serverName, Delegate: *delegate, Dir: *dir, Email: *email, Postgres: *postgres,
		TLSMode: *tlsMode, CertFile: *certFile, KeyFile: *keyFile,
		DendriteBin: *dendriteBin, DendriteAddr: *dendriteAddr, WellknowndBin: self, Source: *src, Keep: keep,
	})
	if err != nil {
		return err
	}
	if err := deploy.Write(*dir, d.Files, *force); err != nil {
		return err
	}
	for _, f := range d.Files {
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*dir, f.Path))
	}
	if keep.KeyID != "" {
		fmt.Fprintf(stdout, "kept the signing key %s: it is the server's identity in federation\n", keep.KeyID)
	}
	if keep.RegistrationSecret != "" || keep.PostgresPassword != "" {
		fmt.Fprintln(stdout, "kept the registration secret and the database password that Dendrite and the database already use")
	}
	for _, n := range d.Notes {
		fmt.Fprintln(stdout, "note: "+n)
	}
	cfg := filepath.Join(*dir, "wellknownd.yaml")
	fmt.Fprintf(stdout, "\nNext: check %s (tls.email, listen), then run\n  wellknownd validate -config %s\n", cfg, cfg)
	if *postgres {
		fmt.Fprintf(stdout, "\nCreate Dendrite's database role and database, once:\n  sudo -u postgres psql < %s\n", filepath.Join(*dir, "postgres-init.sql"))
	}
	// The test suite runs exactly these lines: keep the heading and the
	// two-space indent.
	fmt.Fprintln(stdout, "\nTo run it under systemd, as root:")
	for _, s := range d.Systemd.Steps {
		fmt.Fprintln(stdout, "  "+s)
	}
	for _, w := range d.Systemd.Warnings {
		fmt.Fprintln(stdout, "warning: "+w)
	}
	fmt.Fprintf(stdout, "\nOr with Docker:\n  cd %s && docker compose up -d --wait\n", filepath.Join(*dir, "compose"))
	return nil
}
