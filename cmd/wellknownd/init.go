package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/deploy"
)

// runInit writes a complete deployment: see package deploy.
func runInit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverName := fs.String("server-name", "", "The Matrix server name, the part after the colon in @alice:example.com. Required.")
	delegate := fs.String("delegate", "", "The host that serves the homeserver, e.g. matrix.example.com; the server name itself when left out.")
	dir := fs.String("dir", ".", "Write the deployment into this directory; for the systemd unit as shipped, /var/lib/wellknownd.")
	email := fs.String("email", "", "The ACME account's e-mail (certificate expiry warnings go there). Default: admin@SERVER_NAME.")
	postgres := fs.Bool("postgres", false, "Run Dendrite on the system's PostgreSQL (a postgres-init.sql is written) instead of SQLite files.")
	dendriteBin := fs.String("dendrite-bin", "", "The dendrite binary to supervise. Default: dendrite on $PATH, else /usr/local/bin/dendrite.")
	dendriteAddr := fs.String("dendrite-addr", "127.0.0.1:8008", "The address Dendrite's HTTP listener binds, on loopback.")
	force := fs.Bool("force", false, "Overwrite files that exist. Without it, init writes nothing when any of its files is there.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *serverName == "" {
		fs.Usage()
		return usageError{"init: -server-name is required"}
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
	files, err := deploy.Generate(deploy.Options{
		ServerName: *serverName, Delegate: *delegate, Dir: *dir, Email: *email, Postgres: *postgres,
		DendriteBin: *dendriteBin, DendriteAddr: *dendriteAddr, WellknowndBin: self,
	})
	if err != nil {
		return err
	}
	if err := deploy.Write(*dir, files, *force); err != nil {
		return err
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*dir, f.Path))
	}
	fmt.Fprintf(stdout, "\nNext: check %s (tls.email, listen), then run\n  wellknownd validate -config %s\n",
		filepath.Join(*dir, "wellknownd.yaml"), filepath.Join(*dir, "wellknownd.yaml"))
	return nil
}
