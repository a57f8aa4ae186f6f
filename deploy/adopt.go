package deploy

// adopt.go is "wellknownd adopt"'s interface and its order of work: read
// and check everything first (adoptplan.go, then adoptcompose.go or
// adopthost.go), refuse if a file is in the way, and only then let the
// caller write, so that a refusal leaves the deployment as it was.

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/fedcheck"
	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

// AdoptOptions say which existing Dendrite to put wellknownd in front of,
// and how ("wellknownd adopt"). Exactly one of Compose and Host is set:
// each carries the options of its mode alone, so that no option is given
// to one mode and silently ignored.
type AdoptOptions struct {
	// DendriteConfig is the dendrite.yaml the homeserver runs with. It is
	// read, never written.
	DendriteConfig string
	// ServerName, when given, must be dendrite.yaml's global.server_name:
	// a guard against adopting another server's configuration.
	ServerName string
	// Delegate is where the homeserver is served, HOST[:PORT]
	// (matrix.example.com, or matrix.example.com:8448 to keep peers and
	// clients on 8448). It overrides the documents served today. Default:
	// what those documents say (Fetch), else dendrite.yaml's
	// well_known_server_name or well_known_client_name when they name
	// another host than the server name.
	Delegate string
	// Fetch returns the documents the server name's host serves today
	// (fedcheck.FetchPublished); nil fetches nothing.
	Fetch func(delegation.ServerName) (server, client fedcheck.Published)
	// TLSMode is acme (default), files (CertFile and KeyFile, e.g. what
	// acme.sh installs) or internal.
	TLSMode, CertFile, KeyFile string
	// Email is the ACME account's contact; default admin@SERVER_NAME.
	Email string
	// Site is the web server that answers on the server name's host
	// outside /.well-known/matrix, when there is one to keep.
	Site string

	// Compose: docker compose runs Dendrite.
	Compose *ComposeOptions
	// Host: Dendrite runs on this host, and a systemd unit fronts it.
	Host *HostOptions
}

// ComposeOptions are adopt's for a Dendrite that docker compose runs. The
// files go beside the compose file.
type ComposeOptions struct {
	// File is the compose file that runs Dendrite.
	File string
	// Service is Dendrite's compose service, when it cannot be told from
	// its image or its mounts.
	Service string
	// Source is a clone of wellknownd the compose service builds from;
	// default the public repository.
	Source string
}

// HostOptions are adopt's for a Dendrite that runs on this host.
type HostOptions struct {
	// Upstream is Dendrite's HTTP listener. Default: http://127.0.0.1:8008.
	Upstream string
	// Dir is where the configuration and the unit go. Default:
	// /var/lib/wellknownd.
	Dir string
	// WellknowndBin is the binary the unit starts.
	WellknowndBin string
}

// Adoption is what adopt writes and what that changes, for the operator to
// read before anything is written.
type Adoption struct {
	ServerName, Delegate string
	// Dir is where Files go; none of them may exist yet.
	Dir   string
	Files []File
	// Documents are the documents wellknownd will serve, with where their
	// values came from.
	Documents []ServedDocument
	// Changes say what changes in the running deployment once it starts.
	Changes []string
	// Kept say what stays as it was (identity, data, other services).
	Kept []string
	// DendriteEdits are lines of dendrite.yaml that the operator should
	// change, and why; adopt never writes that file.
	DendriteEdits []yamlfile.Problem
	// DNS says what must change in DNS, and why.
	DNS []string
	// Before are commands to run before Start; Start starts it; Rollback
	// goes back to how it was.
	Before, Start, Rollback []string
	Warnings                []string

	// check is wellknownd.yaml as the container or the unit will read it
	// (its mounts' sources in place of the paths inside), validated before
	// anything is written.
	check []byte
}

// Adopt reads an existing Dendrite deployment and makes the files that put
// wellknownd in front of it. It writes nothing; every problem with the
// input is an error that names its file (and line where there is one).
func Adopt(o AdoptOptions) (*Adoption, error) {
	if (o.Compose == nil) == (o.Host == nil) {
		return nil, errors.New("adopt: set exactly one of AdoptOptions.Compose and AdoptOptions.Host")
	}
	p, err := readPlan(o)
	if err != nil {
		return nil, err
	}
	a := &Adoption{ServerName: p.ServerName, Delegate: p.Delegate, DendriteEdits: p.Edits, Kept: p.Kept, Warnings: p.Warnings}
	if o.Compose != nil {
		err = a.compose(p, *o.Compose)
	} else {
		err = a.host(p, *o.Host)
	}
	if err != nil {
		return nil, err
	}
	a.Changes = append(p.Changes, a.Changes...)
	// What validate would say of the file, as the daemon will read it: an
	// error here is adopt's own, and nothing is written.
	cfg, problems := config.Parse(filepath.Join(a.Dir, "wellknownd.yaml"), a.check)
	if errs := problems.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("the wellknownd.yaml adopt made does not validate, so nothing was written:\n%w", errs)
	}
	for _, w := range problems {
		a.Warnings = append(a.Warnings, w.String())
	}
	a.Documents = p.documents(cfg)
	a.DNS = dnsSteps(p)
	// adopt adds to a deployment, and never replaces what is there: it
	// has no -force.
	if exist := existing(a.Dir, a.Files); len(exist) > 0 {
		for i, p := range exist {
			exist[i] = filepath.Join(a.Dir, p)
		}
		return nil, fmt.Errorf("%s already exists: adopt writes new files and never merges into or replaces existing ones; move it away (or merge by hand) and run adopt again. Nothing was written", strings.Join(exist, " and "))
	}
	return a, nil
}

// dnsSteps say what DNS must say once wellknownd serves: the server name's
// host (the documents) and every host the documents name must point at
// this machine, and not through Cloudflare's proxy.
func dnsSteps(p *adoptPlan) []string {
	return []string{
		fmt.Sprintf("point %s (A and AAAA records) at this machine, where wellknownd now answers: %s serves the documents, and remote servers and clients connect to the hosts they name", strings.Join(p.Hosts, " and "), p.ServerName),
		"with Cloudflare, set those records to \"DNS only\" (grey cloud), and remove the Worker's route: its proxy carries HTTPS on 443 (and 2053, 2083, 2087, 2096, 8443) but not 8448, where federation goes, and it would answer the documents itself instead of wellknownd",
		"until then, clients and remote servers keep reaching the old setup; adopt fetched today's documents from it (-resolve HOST:443:ADDR fetches them from an address of your choice)",
	}
}
