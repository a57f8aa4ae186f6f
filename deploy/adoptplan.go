package deploy

// adoptplan.go is what adopt decides before it looks at how Dendrite runs:
// the delegation, read from dendrite.yaml and the options, the lines of
// dendrite.yaml to change, and whether the TLS options hold. It is the same
// for a compose project and a host, and is all that the two take from
// dendrite.yaml, so that they cannot read it differently.

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/fedcheck"
	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

// dendriteDefaultMaxFile is Dendrite's media_api.max_file_size_bytes when
// its configuration does not set it.
const dendriteDefaultMaxFile = 10 << 20

// adoptPlan is what adopt derived from dendrite.yaml and the options both
// modes share, checked.
type adoptPlan struct {
	// DendriteYAML is dendrite.yaml's path as given.
	DendriteYAML string
	// ServerName is global.server_name; Delegate the host that serves it.
	ServerName, Delegate string
	// MServer and BaseURL are what the documents say (adoptdocs.go);
	// IdentityServer and ClientExtra (a JSON object, or "") the rest of
	// the client document served today.
	MServer, BaseURL, IdentityServer, ClientExtra string
	// FederationClientAPI: a base_url that clients hold names 8448.
	FederationClientAPI bool
	// Sources say where m.server and base_url came from.
	Sources []string
	// PublishedServer and PublishedClient are the documents served today,
	// as fetched; nil when not fetched.
	PublishedServer, PublishedClient *fedcheck.Published
	// Hosts are the names the edge answers for.
	Hosts []string
	// MaxBody is upstream.max_body: Dendrite's media limit.
	MaxBody config.Size
	// TLSMode is acme, files or internal; with files, CertFile and KeyFile
	// (as given) cover every name in Hosts.
	TLSMode, CertFile, KeyFile string
	// Email is the ACME account's contact.
	Email string
	// Site is the web site the server name's host keeps serving, or "".
	Site string
	// Edits, Changes, Kept and Warnings start Adoption's.
	Edits                   []yamlfile.Problem
	Changes, Kept, Warnings []string
}

// readPlan reads dendrite.yaml and checks the options that do not depend
// on how Dendrite runs. Every problem with dendrite.yaml names its line.
func readPlan(o AdoptOptions) (*adoptPlan, error) {
	d, err := config.LoadDendrite(o.DendriteConfig)
	if err != nil {
		var p yamlfile.Problem
		if errors.As(err, &p) {
			return nil, yamlfile.Problems{p}
		}
		return nil, fmt.Errorf("the Dendrite configuration: %w", err)
	}
	p := &adoptPlan{DendriteYAML: d.Path}
	for _, step := range []func(yamlfile.File, AdoptOptions) error{
		p.serverName, p.delegation, p.realIPHeader, p.mediaLimit, p.identity, p.tls, p.site,
	} {
		if err := step(d, o); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// dendriteProblem is an error about a line of dendrite.yaml.
func dendriteProblem(d yamlfile.File, line int, field, format string, args ...any) error {
	return yamlfile.Problems{{File: d.Path, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}}
}

// serverName guards against adopting another server's configuration.
func (p *adoptPlan) serverName(d yamlfile.File, o AdoptOptions) error {
	name, line := d.Get("global.server_name")
	switch {
	case name == "":
		return dendriteProblem(d, line, "global.server_name", "is not set: is this Dendrite's configuration?")
	case o.ServerName != "" && !strings.EqualFold(o.ServerName, name):
		return dendriteProblem(d, line, "global.server_name", "is %q, not %q (-server-name): this is another server's configuration", name, o.ServerName)
	}
	if _, err := delegation.ParseHostname(name); err != nil {
		return dendriteProblem(d, line, "global.server_name", "%q %v; wellknownd delegates a server name without a port", name, err)
	}
	p.ServerName = name
	return nil
}

// realIPHeader asks for the header wellknownd sets, without which Dendrite
// records wellknownd's address as every device's.
func (p *adoptPlan) realIPHeader(d yamlfile.File, _ AdoptOptions) error {
	if h, line := d.Get("sync_api.real_ip_header"); h != "X-Forwarded-For" {
		msg := "is not set"
		if h != "" {
			msg = fmt.Sprintf("is %q, which wellknownd does not send", h)
		}
		p.Edits = append(p.Edits, yamlfile.Problem{File: d.Path, Line: line, Field: "sync_api.real_ip_header",
			Msg: msg + ": set it to X-Forwarded-For (and restart Dendrite), or every device's last-seen address is wellknownd's. wellknownd sets that header to the client's address and drops what untrusted clients send in it"})
	}
	return nil
}

// mediaLimit makes upstream.max_body Dendrite's media limit, so that an
// upload Dendrite takes is not refused by the edge first.
func (p *adoptPlan) mediaLimit(d yamlfile.File, _ AdoptOptions) error {
	p.MaxBody = dendriteDefaultMaxFile
	v, line := d.Get("media_api.max_file_size_bytes")
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil || n < 0:
		return dendriteProblem(d, line, "media_api.max_file_size_bytes", "%q is not a byte count", v)
	case n == 0:
		p.MaxBody = 1 << 30
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s:%d: media_api.max_file_size_bytes is 0 (no limit); wellknownd's upstream.max_body cannot be unlimited and is set to 1GiB", d.Path, line))
	default:
		p.MaxBody = config.Size(n)
	}
	return nil
}

// identity says that the server's identity stays: adopt reads the signing
// key's ID to say so, and never writes the file.
func (p *adoptPlan) identity(d yamlfile.File, _ AdoptOptions) error {
	keyPath, _ := d.Get("global.private_key")
	if keyPath == "" {
		keyPath = "matrix_key.pem"
	}
	if !filepath.IsAbs(keyPath) {
		keyPath = filepath.Join(filepath.Dir(d.Path), keyPath)
	}
	if b, err := os.ReadFile(keyPath); err == nil {
		if blk, _ := pem.Decode(b); blk != nil && blk.Headers["Key-ID"] != "" {
			p.Kept = append(p.Kept, fmt.Sprintf("the signing key %s (%s): the server's identity in federation", blk.Headers["Key-ID"], keyPath))
		}
	} else {
		p.Kept = append(p.Kept, fmt.Sprintf("the signing key (%s): the server's identity in federation", keyPath))
	}
	p.Kept = append(p.Kept, d.Path+", its database and its media")
	return nil
}

// tls checks the TLS options before anything is written: a certificate
// that does not name every host fails only once the edge serves it.
func (p *adoptPlan) tls(_ yamlfile.File, o AdoptOptions) error {
	p.Email = o.Email
	if p.Email == "" {
		p.Email = "admin@" + p.ServerName
	}
	p.TLSMode = o.TLSMode
	switch o.TLSMode {
	case "", "acme":
		p.TLSMode = "acme"
	case "internal":
	case "files":
		if err := checkCertificate(o.CertFile, o.KeyFile, p.Hosts); err != nil {
			return err
		}
		p.CertFile, p.KeyFile = o.CertFile, o.KeyFile
	default:
		return fmt.Errorf("-tls %q: use acme, files or internal", o.TLSMode)
	}
	return nil
}

// site checks the web site the server name's host keeps serving.
func (p *adoptPlan) site(_ yamlfile.File, o AdoptOptions) error {
	if o.Site != "" {
		if u, err := url.Parse(o.Site); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-site %q: give the web site's own server as an http:// or https:// URL", o.Site)
		}
	}
	p.Site = o.Site
	return nil
}

// checkCertificate checks that a certificate for tls.mode files covers
// every name the edge answers for: with delegation the server name's host
// serves the documents, which a certificate made for the homeserver's host
// alone does not name.
func checkCertificate(certFile, keyFile string, hosts []string) error {
	if certFile == "" || keyFile == "" {
		return errors.New("-tls files needs -cert-file and -key-file: the certificate chain and key that acme.sh (or another client) installs")
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("-cert-file: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("-cert-file %s: no PEM certificate in it", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("-cert-file %s: %w", certFile, err)
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return fmt.Errorf("-cert-file %s is for %s, not %s, which wellknownd answers for too (the /.well-known/matrix documents): issue one that names %s (acme.sh --issue -d %s), or use -tls acme",
				certFile, strings.Join(cert.DNSNames, ", "), h, strings.Join(hosts, " and "), strings.Join(hosts, " -d "))
		}
	}
	if _, err := os.Stat(keyFile); err != nil {
		return fmt.Errorf("-key-file: %w", err)
	}
	return nil
}

// templateData is the part of wellknownd.yaml that does not depend on how
// Dendrite runs.
func (p *adoptPlan) templateData() *templateData {
	return &templateData{
		ServerName: p.ServerName, MServer: p.MServer, BaseURL: p.BaseURL, Hosts: p.Hosts, Site: p.Site,
		IdentityServer: p.IdentityServer, ClientExtra: p.ClientExtra, FederationClientAPI: p.FederationClientAPI,
		Email: p.Email, MaxBody: p.MaxBody.String(), TLSMode: p.TLSMode,
	}
}
