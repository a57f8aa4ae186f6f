// Package config reads wellknownd's one configuration file: it decodes YAML
// strictly, fills defaults, validates every value up front, so that each
// problem is reported with its file, line and field before anything listens,
// and resolves each value once into the type the code uses (a server name, a
// URL, a network, a signal), so that nothing downstream parses it again.
package config

import (
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/wellknownd/wellknownd/delegation"
)

// Config is the whole configuration file. Every field is documented where it
// is declared; Default holds every default value in one place.
type Config struct {
	// ServerName is the Matrix server name, the part after the colon in
	// @alice:example.com. Its host is the "base domain" that publishes the
	// /.well-known/matrix documents.
	ServerName string `yaml:"server_name"`
	// Delegation is what the discovery documents say.
	Delegation Delegation `yaml:"delegation"`
	// Hosts are the names this daemon answers for (Host header or SNI,
	// without port, case-insensitive). A request for any other name gets 421
	// Misdirected Request and is never proxied. The server_name's host must
	// be among them. Default: the server_name's host and the delegated
	// host. "*.example.com" covers one leftmost label, with tls.mode acme
	// and dns-01 only.
	Hosts []string `yaml:"hosts"`
	// BaseDomain says what the server_name's host answers outside
	// /.well-known/matrix/. With neither redirect nor proxy it answers 404.
	BaseDomain BaseDomain `yaml:"base_domain"`
	// Listen holds the listening addresses; "" turns a listener off.
	Listen Listen `yaml:"listen"`
	// TLS says where certificates come from.
	TLS TLS `yaml:"tls"`
	// Upstream is the homeserver behind this edge.
	Upstream Upstream `yaml:"upstream"`
	// Routes send other names or paths of this edge to other services or
	// to a directory: Element Web, a sliding-sync proxy, a web site.
	Routes []Route `yaml:"routes"`
	// SlidingSync is Simplified Sliding Sync (MSC4186), the sync API of
	// Element X, answered by the edge for a homeserver that lacks it.
	SlidingSync SlidingSync `yaml:"sliding_sync"`
	// Compression compresses JSON and text answers for clients that
	// accept it.
	Compression Compression `yaml:"compression"`
	// Limits bound what clients can make the edge hold: connections,
	// streams, sockets to the homeserver, time spent waiting on a body.
	Limits Limits `yaml:"limits"`
	// ShutdownTimeout bounds how long a stopping daemon waits for in-flight
	// requests (long-polls included) before it closes them.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Log configures the daemon's log on standard error. The -log-format
	// and -log-level flags, when given, win.
	Log Log `yaml:"log"`
	// SelfCheck is the check the edge runs of itself as the world sees it
	// (docs/self-check.md): after start, on a schedule, after every reload
	// and every certificate obtained or renewed.
	SelfCheck SelfCheck `yaml:"self_check"`
	// Supervise lists the processes this daemon runs (Dendrite, perhaps
	// PostgreSQL) and the services it only watches. While any entry is not
	// ready, the proxy answers 503 at once instead of dialling.
	Supervise []Supervised `yaml:"supervise"`

	// Name is server_name, parsed by validation. Like every field tagged
	// yaml:"-", it is what the file's text means, resolved once by Parse:
	// the code downstream takes these and never parses the text again.
	Name delegation.ServerName `yaml:"-"`
	// Documents are the discovery documents, rendered by validation.
	Documents delegation.Documents `yaml:"-"`
}

// Log configures logging.
type Log struct {
	// Format is text (key=value, default) or json (one object a line).
	Format string `yaml:"format"`
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Requests logs every request (method, host, path, status, bytes,
	// duration, peer) at info level; off by default.
	Requests bool `yaml:"requests"`
}

// SelfCheck configures the self-check: what "wellknownd check" finds, run
// by the edge against itself through DNS and its public addresses.
type SelfCheck struct {
	// Interval is the time between two runs (default 10m). 0 turns the
	// self-check off: no runs, no metrics, nothing in /status.
	Interval time.Duration `yaml:"interval"`
	// Notary, when set, is the server name of a key server (notary) other
	// servers trust, e.g. matrix.org: the self-check asks it what it
	// reports of this server's signing keys. Off by default: each run
	// then sends a request to that server.
	Notary string `yaml:"notary"`
	// NotaryName is Notary, parsed by validation.
	NotaryName delegation.ServerName `yaml:"-"`
}

// Supervised is one entry of supervise.
type Supervised struct {
	// Name identifies the entry in logs, /status and after lists.
	Name string `yaml:"name"`
	// Command is the program and its arguments; without one, the entry is
	// probe-only: a service run by something else (a container, systemd).
	Command []string `yaml:"command"`
	// Dir is the working directory; default wellknownd's own.
	Dir string `yaml:"dir"`
	// Env is added to wellknownd's environment for the process. The DNS
	// providers' credential variables (DNSSecretVariables) are not passed
	// on from wellknownd's own environment; Env may set them.
	Env map[string]string `yaml:"env"`
	// After names entries that must be ready before this one starts; they
	// are stopped after it.
	After []string `yaml:"after"`
	// Ready is the readiness probe: http (a URL that must answer 2xx) or
	// tcp (host:port that must accept). Required for probe-only entries.
	Ready Ready `yaml:"ready"`
	// StopSignal asks the process group to stop: SIGTERM (default),
	// SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2.
	StopSignal string `yaml:"stop_signal"`
	// Signal is StopSignal resolved by validation.
	Signal syscall.Signal `yaml:"-"`
	// StopTimeout is how long it may take to stop before its process group
	// is killed; default 30s.
	StopTimeout time.Duration `yaml:"stop_timeout"`
	// User runs the command as this user (a name or a uid), with the
	// user's groups; wellknownd must run as root for it. Unlike a wrapper
	// such as setpriv, the change happens before the command starts, so
	// the kernel still kills the process if wellknownd dies.
	User string `yaml:"user"`
	// Group replaces the user's primary group (a name or a gid).
	Group string `yaml:"group"`
	// Credential is User and Group resolved by validation; nil for
	// wellknownd's own.
	Credential *syscall.Credential `yaml:"-"`
}

// Ready is a readiness probe.
type Ready struct {
	// HTTP is a URL that must answer 2xx for the entry to be ready, e.g.
	// http://127.0.0.1:8008/_dendrite/monitor/up.
	HTTP string `yaml:"http"`
	// TCP is a host:port that must accept a connection, e.g.
	// 127.0.0.1:5432.
	TCP string `yaml:"tcp"`
	// URL is HTTP parsed by validation; nil for a tcp probe.
	URL *url.URL `yaml:"-"`
}

// Delegation is the content of /.well-known/matrix/{server,client,support}.
type Delegation struct {
	// Server is m.server: host[:port] that federation traffic goes to, no
	// scheme, no path. Without a port, peers use 8448.
	Server string `yaml:"server"`
	// ClientBaseURL is m.homeserver.base_url: the absolute https URL that
	// clients append /_matrix/client/... to.
	ClientBaseURL string `yaml:"client_base_url"`
	// IdentityServer is m.identity_server.base_url; empty leaves it out.
	IdentityServer string `yaml:"identity_server"`
	// ClientExtra are further keys merged into the client document, such as
	// org.matrix.msc3575.proxy or org.matrix.msc4143.rtc_foci. They may not
	// set m.homeserver or m.identity_server.
	ClientExtra map[string]any `yaml:"client_extra"`
	// Support is /.well-known/matrix/support; absent serves 404 there.
	Support *Support `yaml:"support"`
	// MaxAge is the Cache-Control max-age of the documents. Remote servers
	// cache m.server for this long (the spec caps it at 48h), so a shorter
	// value lets a move take effect sooner.
	MaxAge time.Duration `yaml:"max_age"`

	// Delegated is Server parsed by validation.
	Delegated delegation.ServerName `yaml:"-"`
	// BaseURL is ClientBaseURL parsed by validation.
	BaseURL *url.URL `yaml:"-"`
}

// Support is the support document (MSC1929, in the spec since v1.10).
type Support struct {
	// Contacts are people to reach; each needs matrix_id or email_address,
	// and a role (m.role.admin, m.role.security, or a namespaced role).
	Contacts []Contact `yaml:"contacts"`
	// SupportPage is a web page with support information.
	SupportPage string `yaml:"support_page"`
}

// Contact is one support contact.
type Contact struct {
	// MatrixID is the contact's Matrix user ID, e.g. @admin:example.com.
	MatrixID string `yaml:"matrix_id"`
	// EmailAddress is the contact's email address.
	EmailAddress string `yaml:"email_address"`
	// Role is m.role.admin, m.role.security, or a namespaced role.
	Role string `yaml:"role"`
}

// BaseDomain is what the server_name's host serves besides its well-known
// documents: usually the project's web site.
type BaseDomain struct {
	// Redirect sends every other request there (308), with the request's
	// path and query appended to the URL's path.
	Redirect string `yaml:"redirect"`
	// Proxy forwards every other request to this web server.
	Proxy string `yaml:"proxy"`
	// RedirectURL and ProxyURL are Redirect and Proxy parsed by
	// validation; nil when unset.
	RedirectURL *url.URL `yaml:"-"`
	ProxyURL    *url.URL `yaml:"-"`
}

// Listen holds the addresses to listen on, host:port; "" turns one off.
type Listen struct {
	// HTTP serves plain HTTP: everything when tls.mode is off.
	HTTP string `yaml:"http"`
	// HTTPS serves the documents and the client API over TLS.
	HTTPS string `yaml:"https"`
	// Federation serves the federation API over TLS, traditionally :8448.
	Federation string `yaml:"federation"`
	// FederationClientAPI has the federation listener serve everything the
	// https listener serves (the client API, media, the documents) for the
	// names in hosts, not the federation API alone: for a base_url that
	// names the federation port (https://matrix.example.com:8448), as
	// Dendrite's own 8448 served both and clients keep the base_url they
	// logged in with. Off by default.
	FederationClientAPI bool `yaml:"federation_client_api"`
	// Admin serves health, metrics, status and reload; keep it on loopback.
	Admin string `yaml:"admin"`
	// HTTP3 serves HTTP/3 (QUIC) on the UDP ports of https and federation,
	// and advertises it with Alt-Svc; on by default. A restart applies a
	// change.
	HTTP3 bool `yaml:"http3"`
	// Metrics serves GET /metrics, /healthz and /readyz alone (no reload,
	// no status), for a Prometheus or a load balancer's health checks from
	// another host or container, e.g. ":9100" on a compose network. Off
	// ("") by default.
	Metrics string `yaml:"metrics"`
}

// TLS says where certificates come from.
type TLS struct {
	// Mode is one of:
	//   acme:     certificates from an ACME CA (Let's Encrypt by default) for
	//             exactly the names in hosts, renewed and swapped in by
	//             themselves;
	//   files:    a certificate and key from disk (cert_file, key_file),
	//             reloaded when they change;
	//   internal: a local CA, created once under storage, issues for hosts;
	//             for trying things out without a public domain;
	//   off:      plain HTTP on listen.http for everything.
	Mode TLSMode `yaml:"mode"`
	// Email is the ACME account's contact; the CA writes to it before a
	// certificate expires unrenewed. Giving it agrees to the CA's terms.
	Email string `yaml:"email"`
	// Agree accepts the CA's subscriber agreement without an email.
	Agree bool `yaml:"agree"`
	// CA is letsencrypt, letsencrypt-staging, zerossl, or an ACME directory
	// URL. With letsencrypt and a zerossl_api_key_file, ZeroSSL is the
	// fallback when Let's Encrypt fails.
	CA string `yaml:"ca"`
	// CARoot is a PEM file of roots to trust for the ACME server's own HTTPS
	// (a private CA; tests). It does not change which roots clients trust.
	CARoot string `yaml:"ca_root"`
	// ZeroSSLAPIKeyFile holds a ZeroSSL API key; needed for ca: zerossl.
	ZeroSSLAPIKeyFile string `yaml:"zerossl_api_key_file"`
	// Storage holds certificates, keys, the ACME account and challenge
	// tokens: a directory, or a PostgreSQL URL (postgres://user@host/db)
	// that several edges share, which then also coordinates who orders a
	// certificate (docs/several-edges.md). Default for a directory:
	// $STATE_DIRECTORY (systemd), else $XDG_DATA_HOME/wellknownd, else
	// ~/.local/share/wellknownd.
	Storage string `yaml:"storage"`
	// StorageKind says what Storage names, resolved by validation.
	StorageKind StorageKind `yaml:"-"`
	// StoragePasswordFile holds the PostgreSQL password for a postgres://
	// storage, kept out of this file. Without it the password comes from
	// $PGPASSWORD or ~/.pgpass, as for psql.
	StoragePasswordFile string `yaml:"storage_password_file"`
	// Challenges are the ACME challenge types to use: http-01 (needs
	// listen.http reachable on port 80), tls-alpn-01 (needs listen.https
	// reachable on 443), dns-01 (needs dns).
	Challenges []string `yaml:"challenges"`
	// DNS is the DNS provider for dns-01.
	DNS DNS `yaml:"dns"`
	// CertFile and KeyFile are the PEM chain and key for mode files, e.g.
	// an existing acme.sh setup's fullchain.cer and domain.key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// HSTS is the Strict-Transport-Security header on HTTPS answers for
	// the names in hosts: browsers (Element Web) then never try plain
	// HTTP for them again.
	HSTS HSTS `yaml:"hsts"`
}

// HSTS configures the Strict-Transport-Security header.
type HSTS struct {
	// MaxAge is how long a browser remembers to use HTTPS only; 0 sends
	// no header. Default: 365 days (8760h) for tls.mode acme and files,
	// 0 for internal, whose certificates browsers do not trust.
	MaxAge time.Duration `yaml:"max_age"`
	// IncludeSubdomains extends it to every subdomain of each name: of the
	// server name's host too, so only when every site under the base
	// domain speaks HTTPS. Off by default.
	IncludeSubdomains bool `yaml:"include_subdomains"`
}

// HSTSHeader is the Strict-Transport-Security value, "" for none.
func (t TLS) HSTSHeader() string {
	if t.HSTS.MaxAge <= 0 || t.Mode == TLSOff {
		return ""
	}
	v := "max-age=" + strconv.FormatInt(int64(t.HSTS.MaxAge/time.Second), 10)
	if t.HSTS.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	return v
}

// Upstream is the homeserver this edge fronts.
type Upstream struct {
	// URL is Dendrite's HTTP listener, e.g. http://127.0.0.1:8008. The
	// client API (/_matrix, /_synapse/client) is proxied there, and the
	// federation API too unless FederationURL is set.
	URL string `yaml:"url"`
	// FederationURL, when set, receives /_matrix/federation and /_matrix/key
	// instead of URL.
	FederationURL string `yaml:"federation_url"`
	// MaxBody caps a request body (media uploads); a larger one gets 413
	// M_TOO_LARGE. Match Dendrite's media_api.max_file_size_bytes.
	MaxBody Size `yaml:"max_body"`
	// TrustedProxies are CIDRs (or single addresses) of peers whose
	// X-Forwarded-For/-Proto/-Host are believed: a CDN or load balancer in
	// front of this daemon. From anyone else they are dropped.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ExposeAdmin are CIDRs (or single addresses) of clients allowed to
	// reach /_synapse/admin and /_dendrite/admin; everyone else gets 403.
	ExposeAdmin []string `yaml:"expose_admin"`

	// Target and FederationTarget are URL and FederationURL parsed by
	// validation; FederationTarget is Target when FederationURL is unset.
	Target           *url.URL `yaml:"-"`
	FederationTarget *url.URL `yaml:"-"`
	// Trusted and Admin are TrustedProxies and ExposeAdmin parsed by
	// validation.
	Trusted []netip.Prefix `yaml:"-"`
	Admin   []netip.Prefix `yaml:"-"`
}

// Route is one route: the requests for Host (every name in hosts when
// empty) whose path is Path or below it go to Upstream or are served from
// Static. /_matrix/, /_synapse/, /_dendrite/ and /.well-known/matrix/
// always stay the homeserver's and the documents'.
type Route struct {
	// Host is one of hosts; a name that only routes use (element.example.com)
	// serves nothing but its routes, never the Matrix APIs. A route for a
	// name wins over an overlapping one without a host.
	Host string `yaml:"host"`
	// Path is the prefix, matched by whole segments ("/element" is
	// /element and /element/..., not /elementary); default "/".
	Path string `yaml:"path"`
	// Upstream is an http:// or https:// server (scheme and host only)
	// that gets the request as it came, with the same forwarded headers,
	// body limit and JSON errors as the homeserver.
	Upstream string `yaml:"upstream"`
	// Static is a directory served read-only, for a single-page app such
	// as Element Web: no listings, no dotfiles, nothing outside it,
	// index.html and config.json never cached, hashed assets cached a year.
	Static string `yaml:"static"`
	// MaxBody caps request bodies to Upstream; default upstream.max_body.
	MaxBody Size `yaml:"max_body"`

	// Target is Upstream parsed by validation; nil for a static route.
	Target *url.URL `yaml:"-"`
}

// SlidingSync configures Simplified Sliding Sync (MSC4186,
// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync), the
// only sync Element X speaks. Dendrite does not serve it: the edge answers
// it itself, polling the homeserver's /sync for each device that asks, and
// adds it to the unstable_features of /_matrix/client/versions. A
// homeserver whose /versions already advertises it (Synapse) keeps serving
// it: the edge then passes the path and /versions through untouched.
type SlidingSync struct {
	// Enabled answers the endpoint at the edge and advertises it (the
	// default); false leaves the path and /versions to the homeserver.
	Enabled bool `yaml:"enabled"`
	// Store is where the pollers' positions and the rooms they saw are
	// kept: an absolute file path (SQLite, created with its directory) or
	// a postgres:// URL. Default: the database of a postgres://
	// tls.storage, with tls.storage_password_file (tables prefixed
	// slidingsync_), else slidingsync.db in the state directory: the
	// tls.storage directory, else $STATE_DIRECTORY (systemd), else
	// $XDG_DATA_HOME/wellknownd, else ~/.local/share/wellknownd, where
	// certificates are kept by default. It holds access tokens: never a
	// directory others can read.
	Store string `yaml:"store"`
	// IdleTimeout stops a device's poller this long after its last
	// sliding-sync request (default 10m, at least 1m): an idle client then
	// costs the homeserver nothing, and its next request resumes from the
	// stored position.
	IdleTimeout time.Duration `yaml:"idle_timeout"`

	// SQLitePath or PostgresURL is Store resolved by validation: the one
	// that is set says which store to open. PostgresURL carries the
	// password of tls.storage_password_file when Store is tls.storage's
	// database; it lives in memory only and is never written out.
	SQLitePath  string `yaml:"-"`
	PostgresURL string `yaml:"-"`
}

// Compression configures the compression of answers: zstd or gzip, as the
// client's Accept-Encoding prefers, for JSON, text, JavaScript, XML and
// SVG; never for media, ranges or answers already encoded.
type Compression struct {
	// Enabled turns it on (the default) or off.
	Enabled bool `yaml:"enabled"`
	// MinLength is the smallest body that is compressed (default 1KiB):
	// below it the frame costs more than it saves.
	MinLength Size `yaml:"min_length"`
}

// Limits bound the resources a client can make the edge hold. A change
// needs a restart.
type Limits struct {
	// MaxConns caps the connections open at once on the public listeners
	// (http, https, federation) together. 0 (the default) derives it from
	// the process's descriptor limit, leaving room for the homeserver
	// connections, the admin listener and files, so that descriptors never
	// run out. Past the cap, new connections wait in the kernel's queue.
	// HTTP/3's QUIC connections (both UDP ports) have a cap of their own of
	// the same size; a new one past it is refused unless an idle one can
	// be closed to make room.
	MaxConns int `yaml:"max_conns"`
	// UpstreamConns caps the connections to each upstream (default 4096, or
	// less where the descriptor limit is low). A request that finds none
	// free waits up to UpstreamWait, then gets 503 with Retry-After.
	UpstreamConns int `yaml:"upstream_conns"`
	// UpstreamWait is how long a request waits for a free upstream
	// connection (default 10s).
	UpstreamWait time.Duration `yaml:"upstream_wait"`
	// BodyIdleTimeout ends a request whose body stops arriving for this
	// long (default 60s, as nginx's client_body_timeout). An upload that
	// keeps moving is never cut. A body must start before the homeserver is
	// dialled.
	BodyIdleTimeout time.Duration `yaml:"body_idle_timeout"`
	// BodyMinRate is the least a body must average, in bytes a second,
	// once it has been arriving for body_idle_timeout (default 1KiB): a
	// byte a minute resets any idle timer, yet it is a stalled body, not a
	// slow one, and it is ended with 408. A slow link is far above it.
	BodyMinRate Size `yaml:"body_min_rate"`
	// H2MaxStreams caps the concurrent requests of one HTTP/2 connection
	// (default 128, as nginx). It also bounds how fast one connection may
	// send requests on to an upstream: a burst of twice as many, then as
	// many a second (rapid reset).
	H2MaxStreams int `yaml:"h2_max_streams"`
	// SendTimeout ends a response, or the connection it is on, when a
	// write to the client makes no progress for this long (default 60s,
	// as nginx's send_timeout): a client that stops reading holds neither
	// a connection to the homeserver nor its own for longer. It bounds the
	// time between two successful writes, never a whole answer: a long
	// download that keeps moving, or a /sync long-poll that is waiting for
	// its answer, is never cut.
	SendTimeout time.Duration `yaml:"send_timeout"`
	// StaticFiles caps the files static routes hold open at once, each one
	// descriptor while it is sent. 0 (the default) derives it from the
	// descriptor limit (a sixteenth of it, 16 to 1024), and the connection
	// cap leaves room for it. Files served from memory (static_cache) hold
	// none. A request that finds none free waits up to 2s, then gets 503.
	StaticFiles int `yaml:"static_files"`
	// StaticCache is the memory kept for static routes' small files and
	// compressed variants (default 64MiB, least recently used out first),
	// so that a file is compressed once per version (its size and time of
	// change), not per request. 0 keeps nothing: static files then go out
	// uncompressed unless a precompressed one (.zst, .br, .gz) is beside
	// them.
	StaticCache Size `yaml:"static_cache"`
	// CompressEncoders caps the answers being compressed at once (default
	// 64; each encoder holds about 1 MiB). Past it an answer goes out
	// uncompressed. An answer whose client stops reading gives its encoder
	// back after a second. 0 turns compression off but for precompressed
	// static files.
	CompressEncoders int `yaml:"compress_encoders"`
	// BufferMemory bounds the memory that request bodies and answers held
	// at the edge take together (default 64MiB). Every request body is
	// read whole before the upstream is dialled, up to 64KiB of it in
	// memory (every Matrix event fits), the rest in a temporary file; an
	// answer is read ahead of its client into 32KiB of memory and then a
	// file, so that the homeserver's connection is freed at its own speed
	// whatever the client's.
	BufferMemory Size `yaml:"buffer_memory"`
	// BufferDisk bounds the temporary files of those bodies and answers
	// together (default 2GiB, or the largest max_body if that is more).
	// It must hold at least one body of upstream.max_body and of each
	// route's max_body. When it is spent,
	// a new upload is answered 503 with Retry-After, and an answer is
	// passed on at its client's speed instead; one answer's file takes at
	// most 1GiB.
	BufferDisk Size `yaml:"buffer_disk"`
	// BufferDir holds those temporary files, which have no name (they are
	// unlinked as soon as they are opened: a crash leaves nothing). It is
	// created, mode 0700, at start. Default: a buffers directory under
	// tls.storage when that is a directory, else $STATE_DIRECTORY
	// (systemd), else the system's temporary directory ($TMPDIR, /tmp).
	BufferDir string `yaml:"buffer_dir"`
}

// TLSMode is tls.mode: where certificates come from.
type TLSMode string

// TLS modes.
const (
	TLSACME     TLSMode = "acme"
	TLSFiles    TLSMode = "files"
	TLSInternal TLSMode = "internal"
	TLSOff      TLSMode = "off"
)

// StorageKind is what tls.storage names.
type StorageKind int

// Storage kinds.
const (
	// StorageDir is a directory on this machine (the default).
	StorageDir StorageKind = iota
	// StoragePostgres is a PostgreSQL database that several edges share.
	StoragePostgres
)

// ACME challenge types.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	ChallengeDNS01     = "dns-01"
)

// BuiltIn is the configuration used when no file is given and there is no
// ./wellknownd.yaml: server name localhost, HTTPS on https://localhost:8443
// with a certificate from a local CA (its root's path is logged), plain HTTP
// on 127.0.0.1:8080 and admin on 127.0.0.1:9090, for a local try-out with
// nothing to edit.
const BuiltIn = `# wellknownd's built-in configuration, for a local try-out.
server_name: localhost
delegation:
  server: localhost:8443
  client_base_url: https://localhost:8443
hosts: [localhost, 127.0.0.1]
listen:
  http: 127.0.0.1:8080
  https: 127.0.0.1:8443
  federation: ""
  admin: 127.0.0.1:9090
tls:
  mode: internal
`
