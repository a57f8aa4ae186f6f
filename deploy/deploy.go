// Package deploy holds what an operator installs — the systemd unit, the
// compose file — and writes a complete, consistent deployment from a server
// name and a delegated host ("wellknownd init"): wellknownd.yaml, Dendrite's
// configuration and signing key, a registration secret, PostgreSQL's init
// script, the unit and the compose files.
package deploy

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

//go:embed systemd/wellknownd.service compose/docker-compose.yml
var files embed.FS

// Unit is the hardened systemd unit, as shipped in deploy/systemd.
func Unit() []byte {
	b, _ := files.ReadFile("systemd/wellknownd.service")
	return b
}

// Options describe the deployment to write.
type Options struct {
	// ServerName is the Matrix server name (example.com); Delegate the host
	// that serves it (matrix.example.com), which may be the same.
	ServerName, Delegate string
	// Dir is where the files go; paths inside them are absolute under it.
	Dir string
	// Email is the ACME account's contact.
	Email string
	// TLSMode is acme, files (CertFile and KeyFile) or internal. Default:
	// acme when a public CA can issue for every name, else internal.
	TLSMode, CertFile, KeyFile string
	// Postgres makes the host layout's Dendrite use the system's
	// PostgreSQL (watched by wellknownd) instead of SQLite files.
	Postgres bool
	// DendriteBin is the dendrite binary wellknownd.yaml runs.
	DendriteBin string
	// DendriteAddr is Dendrite's HTTP listener; default 127.0.0.1:8008.
	DendriteAddr string
	// WellknowndBin is the binary the systemd unit starts.
	WellknowndBin string
	// Source is a clone of wellknownd that docker compose builds the image
	// from when it is not there yet; "" leaves the compose file's default,
	// the public repository.
	Source string
	// Keep are identities and secrets to write again instead of new ones
	// (see Existing); empty fields are made anew.
	Keep Existing
}

// File is one file of a deployment.
type File struct {
	// Path is relative to Options.Dir.
	Path string
	Data []byte
	Mode fs.FileMode
}

// maxFileSize is Dendrite's media limit and wellknownd's max_body: they
// must agree, or uploads fail with an HTML 413 or a confusing M_TOO_LARGE.
const maxFileSize = 100 << 20

// Deployment is what Generate makes.
type Deployment struct {
	Files []File
	// Systemd says how to install the generated unit.
	Systemd SystemdSetup
	// Notes say what init chose, and what is left to the operator.
	Notes []string
}

// Generate makes every file of a deployment. It does not touch the disk.
func Generate(o Options) (*Deployment, error) {
	if o.ServerName == "" || o.Delegate == "" {
		return nil, errors.New("both the server name and the delegated host are needed")
	}
	if o.DendriteAddr == "" {
		o.DendriteAddr = "127.0.0.1:8008"
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	key := o.Keep.SigningKey
	if key == nil {
		if key, _, err = NewSigningKey(); err != nil {
			return nil, err
		}
	}
	switch o.TLSMode {
	case "":
		o.TLSMode = "acme"
		for _, h := range hostList(o.ServerName, o.Delegate) {
			if n, err := delegation.ParseHostname(h); err == nil && !config.PublicName(n) {
				o.TLSMode = "internal"
			}
		}
	case "acme", "internal":
	case "files":
		if err := checkCertificate(o.CertFile, o.KeyFile, hostList(o.ServerName, o.Delegate)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("-tls %q: use acme, files or internal", o.TLSMode)
	}
	secret, pgPassword := cmp.Or(o.Keep.RegistrationSecret, randomToken(32)), cmp.Or(o.Keep.PostgresPassword, randomToken(24))
	base := templateData{
		ServerName: o.ServerName, MServer: o.Delegate + ":443", BaseURL: "https://" + o.Delegate,
		Hosts: hostList(o.ServerName, o.Delegate), TLSMode: o.TLSMode, Email: o.Email, MaxBody: "100MiB",
		DendriteVersion: "v0.13.8", MaxFileSize: maxFileSize, RegistrationSecret: secret, PostgresPassword: pgPassword,
	}

	dendriteDir := filepath.Join(dir, "dendrite")
	host := base
	host.DendriteDir, host.StoragePath, host.MediaPath = dendriteDir, "jetstream", "media"
	if o.Postgres {
		host.Database = "postgres://dendrite:" + pgPassword + "@127.0.0.1:5432/dendrite?sslmode=disable"
	}
	host.ValidateCmd, host.TLSStorage = "wellknownd validate -config "+filepath.Join(dir, "wellknownd.yaml"), filepath.Join(dir, "tls")
	host.UpstreamURL, host.DendriteReady = "http://"+o.DendriteAddr, "http://"+o.DendriteAddr+"/_dendrite/monitor/up"
	host.Supervise, host.SupervisePostgres = true, o.Postgres
	host.DendriteBin, host.DendriteAddr = o.DendriteBin, o.DendriteAddr

	compose := base
	compose.DendriteDir, compose.StoragePath, compose.MediaPath = "/var/dendrite", "data/jetstream", "data/media"
	compose.Database = "postgres://dendrite:" + pgPassword + "@postgres:5432/dendrite?sslmode=disable"
	compose.Metrics = ":9100"
	compose.ValidateCmd, compose.TLSStorage = composeValidate("docker compose"), "/var/lib/wellknownd"
	compose.UpstreamURL, compose.DendriteReady = "http://dendrite:8008", "http://dendrite:8008/_dendrite/monitor/up"

	if compose.TLSMode == "files" {
		// Where a compose override would mount them; init's compose file
		// does not (see notes).
		host.CertFile, _ = filepath.Abs(o.CertFile)
		host.KeyFile, _ = filepath.Abs(o.KeyFile)
		compose.CertFile, compose.KeyFile = "/etc/wellknownd/tls/cert.pem", "/etc/wellknownd/tls/key.pem"
	}

	var out []File
	add := func(path string, data []byte, mode fs.FileMode) { out = append(out, File{path, data, mode}) }
	for _, r := range []struct {
		path  string
		write func(*templateData) []byte
		data  *templateData
		mode  fs.FileMode
	}{
		// wellknownd.yaml holds no secret (those live in files it names):
		// readable by the service's own user, whoever wrote it.
		{"wellknownd.yaml", wellknowndYAML, &host, 0o644},
		{"compose/wellknownd.yaml", wellknowndYAML, &compose, 0o644},
		// Dendrite's holds the registration secret and the database
		// password; its reader is Dendrite (the service user on a host,
		// root in Dendrite's image).
		{"dendrite/dendrite.yaml", dendriteYAML, &host, 0o600},
		{"compose/dendrite.yaml", dendriteYAML, &compose, 0o600},
	} {
		b := r.write(r.data)
		if filepath.Base(r.path) == "wellknownd.yaml" {
			// init never writes what its own validate rejects; the
			// compose one as the container would read it, with the
			// certificate mounted.
			check := *r.data
			check.CertFile, check.KeyFile = host.CertFile, host.KeyFile
			_, problems := config.Parse(filepath.Join(dir, r.path), wellknowndYAML(&check))
			// The supervised Dendrite's directory and dendrite.yaml are
			// written with this file, from the same values: validate reads
			// them once they are there.
			errs := slices.DeleteFunc(problems.Errors(), func(p yamlfile.Problem) bool { return strings.HasPrefix(p.Field, "supervise") })
			if len(errs) > 0 {
				return nil, fmt.Errorf("the %s init made does not validate, so nothing was written:\n%w", r.path, errs)
			}
		}
		add(r.path, b, r.mode)
	}
	if o.Postgres {
		add("postgres-init.sql", postgresInitSQL(&host), 0o600)
	}
	add("dendrite/matrix_key.pem", key, 0o600)
	composeFile, _ := files.ReadFile("compose/docker-compose.yml")
	add("compose/docker-compose.yml", composeFile, 0o644)
	// The postgres image reads the password file as root, before it drops
	// to its own user, and creates the role and the database from
	// POSTGRES_USER and POSTGRES_DB: no init script to be readable.
	add("compose/postgres_password.secret", []byte(pgPassword+"\n"), 0o600)
	if o.Source != "" {
		src, err := filepath.Abs(o.Source)
		if err != nil {
			return nil, err
		}
		add("compose/.env", []byte("# The clone of wellknownd that docker compose builds the image from.\nWELLKNOWND_SRC="+src+"\n"), 0o644)
	}
	sd, err := unitFor(o, dir, filepath.Join(dir, "wellknownd.yaml"))
	if err != nil {
		return nil, err
	}
	add("wellknownd.service", sd.Unit, 0o644)
	var notes []string
	switch o.TLSMode {
	case "internal":
		notes = append(notes, "tls.mode is internal: a local CA that clients and servers do not trust, for trying it out; a public CA cannot issue for "+strings.Join(hostList(o.ServerName, o.Delegate), " and ")+" unless they are public names")
	case "files":
		notes = append(notes, fmt.Sprintf("with Docker, mount %s and %s at /etc/wellknownd/tls/cert.pem and key.pem, readable by uid 65532 (a docker-compose.override.yml beside compose/docker-compose.yml)", host.CertFile, host.KeyFile))
	}
	return &Deployment{Files: out, Systemd: sd, Notes: notes}, nil
}

// Write writes files under dir. Unless force is set it refuses, and writes
// nothing, when any of them exists: init never overwrites a key or a
// secret by surprise.
func Write(dir string, files []File, force bool) error {
	if !force {
		if exist := existing(dir, files); len(exist) > 0 {
			return fmt.Errorf("%s already has %s; nothing was written (use -force to overwrite)", dir, strings.Join(exist, ", "))
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

// existing returns the Paths of files that are in dir already. It is the
// one check before init or adopt writes: both refuse to replace what is
// there (init unless forced). A file whose absence cannot be confirmed (a
// directory that cannot be read, a file where a directory should be)
// counts as there, since writing it would replace something or fail
// halfway through, leaving a deployment half written.
func existing(dir string, files []File) []string {
	var exist []string
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, f.Path)); !errors.Is(err, fs.ErrNotExist) {
			exist = append(exist, f.Path)
		}
	}
	return exist
}

// NewSigningKey makes a Matrix signing key in Dendrite's format: a PEM
// block "MATRIX PRIVATE KEY" with header Key-ID: ed25519:XXXXXX, holding
// the 32-byte ed25519 seed.
func NewSigningKey() (pemBytes []byte, keyID string, err error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, "", err
	}
	// Dendrite accepts a-z, A-Z, 0-9 and _ in key IDs.
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	rnd := make([]byte, 6)
	rand.Read(rnd)
	id := make([]byte, len(rnd))
	for i, r := range rnd {
		id[i] = alphabet[int(r)%len(alphabet)]
	}
	keyID = "ed25519:" + string(id)
	return pem.EncodeToMemory(&pem.Block{Type: "MATRIX PRIVATE KEY", Headers: map[string]string{"Key-ID": keyID}, Bytes: seed}), keyID, nil
}

// hostList is the names the edge answers for: the server name, whose host
// serves the documents, then the other names, each once.
func hostList(names ...string) []string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
