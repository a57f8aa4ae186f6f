package deploy

// templates.go owns what the generated files (genfiles.go) are written
// from: init and adopt write wellknownd.yaml from the same values, so they
// must fill the same fields. A typed struct makes a misspelt or forgotten
// field a compile error instead of an empty value in a file someone
// deploys.

import (
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// templateData is what every generated file is written from. A field that
// a caller has no use for stays zero, which each file reads as "not
// there".
type templateData struct {
	// The delegation. wellknownd.yaml and dendrite.yaml are rendered from
	// the same values so that the documents wellknownd serves and what
	// Dendrite would publish never disagree.

	// ServerName is the Matrix server name (example.com).
	ServerName string
	// MServer is the m.server the server document names (host:port).
	MServer string
	// BaseURL is the client base URL the client document names.
	BaseURL string
	// Hosts are the names the edge answers for; the first is the server
	// name, whose host serves the documents.
	Hosts []string
	// IdentityServer is m.identity_server's base_url; "" for none.
	IdentityServer string
	// ClientExtra are the client document's other keys, a JSON object
	// (YAML reads it as a flow mapping); "" for none.
	ClientExtra string
	// FederationClientAPI has the federation listener serve the client
	// API too: a base_url that clients hold names its port.
	FederationClientAPI bool
	// Site is the web server the server name's host keeps proxying to
	// outside /.well-known/matrix; "" when there is none to keep.
	Site string

	// wellknownd.yaml.

	// Adopted names the files adopt read, for the header; "" when init
	// wrote the deployment, which then says so instead.
	Adopted string
	// ValidateCmd checks wellknownd.yaml as the daemon will read it, for
	// the header: on the host, or in the container (docker compose run).
	ValidateCmd string
	// Metrics is the Prometheus listener; "" for none. Only the compose
	// layout has one, reachable on the compose network alone.
	Metrics string
	// TLSMode is acme, files or internal.
	TLSMode string
	// Email is the ACME account's contact (acme).
	Email string
	// CertFile and KeyFile are the certificate chain and key as wellknownd
	// sees them (files).
	CertFile, KeyFile string
	// TLSStorage holds the certificates and the ACME account (acme,
	// internal).
	TLSStorage string
	// UpstreamURL is Dendrite's plain HTTP listener as wellknownd reaches it.
	UpstreamURL string
	// MaxBody is upstream.max_body in the configuration's size syntax; it
	// must not be smaller than Dendrite's media limit, or uploads fail.
	MaxBody string
	// DendriteReady is the URL whose answer means Dendrite is ready.
	DendriteReady string
	// Supervise has wellknownd run Dendrite; without it wellknownd only
	// watches a Dendrite that something else runs.
	Supervise bool
	// SupervisePostgres has wellknownd wait for the system's PostgreSQL
	// before it starts Dendrite (with Supervise).
	SupervisePostgres bool
	// DendriteBin is the dendrite binary wellknownd runs and DendriteAddr
	// its -http-bind-address (with Supervise).
	DendriteBin, DendriteAddr string

	// dendrite.yaml and postgres-init.sql, which only init writes.

	// DendriteVersion is the Dendrite release the configuration is for.
	DendriteVersion string
	// DendriteDir is Dendrite's working directory; its relative paths
	// (StoragePath, MediaPath, the SQLite files) are relative to it.
	DendriteDir string
	// Database is the PostgreSQL connection string; "" puts every
	// component in its own SQLite file.
	Database string
	// StoragePath is JetStream's directory, MediaPath the media's.
	StoragePath, MediaPath string
	// MaxFileSize is media_api.max_file_size_bytes, the size MaxBody says.
	MaxFileSize int64
	// RegistrationSecret is client_api.registration_shared_secret.
	RegistrationSecret string
	// PostgresPassword is the password of the role dendrite.
	PostgresPassword string

	// Override is the compose override that adopt writes; nil otherwise.
	Override *composeOverride
}

// composeOverride is what the compose override (composeOverrideYAML) needs beyond
// templateData: how the services of an adopted compose file change.
type composeOverride struct {
	// ComposeFile is the adopted compose file's name, File the override's.
	ComposeFile, File string
	// Dendrite is Dendrite's service, which wellknownd starts after.
	Dendrite string
	// Ports are the services that give up published ports, in the
	// compose file's order.
	Ports []portChange
	// Build is what compose builds the image from when it is not there.
	Build string
	// ImageUser is the uid the image runs as, who must read the mounts.
	ImageUser int
	// CertSource and KeySource are the bind mounts' sources of the
	// certificate and key (TLSMode files).
	CertSource, KeySource string
	// Networks are Dendrite's networks, which wellknownd joins to reach it.
	Networks []string
}

// portChange is one service's ports: in the override.
type portChange struct {
	Service string
	// Taken are the entries it gives up, as the operator wrote them.
	Taken []string
	// Kept are the entries it keeps, each a YAML sequence item; with
	// none, the service's ports are reset.
	Kept []string
}

// text is a file being generated, a line at a time.
type text struct{ strings.Builder }

// line writes format, filled in with args, and a newline. A value a
// person gave goes in through q, sq or yq wherever it is a YAML or SQL
// value, so that it cannot change the file's structure.
func (t *text) line(format string, args ...any) {
	fmt.Fprintf(t, format, args...)
	t.WriteByte('\n')
}

// q is a YAML (and JSON) double-quoted string: no value can change the
// file's structure.
func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// sq is an SQL string literal.
func sq(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// yq is a YAML scalar quoted only when it must be, as compose files are
// usually written.
func yq(s string) string {
	b, _ := yaml.Marshal(s)
	return strings.TrimSuffix(string(b), "\n")
}

// indent puts n spaces before every line of s, to nest a YAML text made
// elsewhere.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}
