package deploy

// genfiles.go writes the files init and adopt generate: wellknownd.yaml,
// Dendrite's configuration, PostgreSQL's init script and adopt's compose
// override. testdata/generated/ holds what they look like.
//
// They are Go code, not text/template, because of what text/template costs
// every process: its executor calls reflect.Value.MethodByName, and once
// that is linked the linker must keep every exported method of every type
// that could reach an interface. That was 4 MB of binary and 1.6 MB of
// resident memory in a serving edge that never writes one of these files
// (docs/benchmarks.md). TestBadDeps in cmd/wellknownd keeps it out.

import "strings"

// wellknowndYAML is wellknownd.yaml, for init's host and compose layouts
// and for adopt.
func wellknowndYAML(d *templateData) []byte {
	var t text
	if d.Adopted != "" {
		t.line(`# wellknownd configuration, written by "wellknownd adopt" from`)
		t.line(`# %s. Check it, in this directory, with`, d.Adopted)
	} else {
		t.line(`# wellknownd configuration, written by "wellknownd init". Check it, in this`)
		t.line(`# directory, with`)
	}
	t.line(`#   %s`, d.ValidateCmd)
	t.line(`server_name: %s`, q(d.ServerName))
	t.line(`delegation:`)
	t.line(`  server: %s`, q(d.MServer))
	t.line(`  client_base_url: %s`, q(d.BaseURL))
	if d.IdentityServer != "" {
		t.line(`  identity_server: %s`, q(d.IdentityServer))
	}
	if d.ClientExtra != "" {
		// A JSON object, which YAML reads as a flow mapping.
		t.line(`  client_extra: %s`, d.ClientExtra)
	}
	t.line(`  max_age: 4h`)
	hosts := make([]string, len(d.Hosts))
	for i, h := range d.Hosts {
		hosts[i] = q(h)
	}
	t.line(`hosts: [%s]`, strings.Join(hosts, ", "))
	if d.Site != "" {
		t.line(`base_domain:`)
		t.line(`  proxy: %s   # the web site that %s served before`, q(d.Site), d.Hosts[0])
	}
	t.line(`listen:`)
	t.line(`  http: ":80"`)
	t.line(`  https: ":443"`)
	t.line(`  federation: ":8448"`)
	if d.FederationClientAPI {
		t.line(`  federation_client_api: true   # base_url names 8448: clients logged in with it keep it`)
	}
	t.line(`  admin: "127.0.0.1:9090"`)
	if d.Metrics != "" {
		t.line(`  metrics: %s   # /metrics for Prometheus on the compose network; nothing else`, q(d.Metrics))
	}
	t.line(`tls:`)
	switch d.TLSMode {
	case "files":
		t.line(`  mode: files   # reloaded when the files change: "wellknownd reload" after a renewal`)
		t.line(`  cert_file: %s`, q(d.CertFile))
		t.line(`  key_file: %s`, q(d.KeyFile))
	case "internal":
		t.line(`  mode: internal   # a local CA: clients and servers do not trust it`)
		t.line(`  storage: %s`, q(d.TLSStorage))
	default:
		t.line(`  mode: acme`)
		t.line(`  email: %s`, q(d.Email))
		t.line(`  ca: letsencrypt`)
		t.line(`  storage: %s`, q(d.TLSStorage))
		t.line(`  challenges: [http-01, tls-alpn-01]`)
	}
	t.line(`upstream:`)
	t.line(`  url: %s`, q(d.UpstreamURL))
	t.line(`  max_body: %s`, d.MaxBody)
	t.line(`supervise:`)
	if !d.Supervise {
		how := "run by docker compose"
		if d.Adopted != "" {
			how = "run as before"
		}
		t.line(`  - name: dendrite   # %s; watched so the proxy knows when it is ready`, how)
		t.line(`    ready: {http: %s}`, q(d.DendriteReady))
		return []byte(t.String())
	}
	if d.SupervisePostgres {
		t.line(`  - name: postgres`)
		t.line(`    ready: {tcp: "127.0.0.1:5432"}   # the system's PostgreSQL service, watched, not run`)
	}
	t.line(`  - name: dendrite`)
	t.line(`    command: [%s, -config, dendrite.yaml, -http-bind-address, %s]`, q(d.DendriteBin), q(d.DendriteAddr))
	t.line(`    dir: %s`, q(d.DendriteDir))
	if d.SupervisePostgres {
		t.line(`    after: [postgres]`)
	}
	t.line(`    ready: {http: %s}`, q(d.DendriteReady))
	t.line(`    stop_timeout: 30s`)
	return []byte(t.String())
}

// dendriteYAML is Dendrite's configuration, which only init writes.
func dendriteYAML(d *templateData) []byte {
	var t text
	// sqlite gives a component its own SQLite file when there is no
	// PostgreSQL database; key is the component's database key.
	sqlite := func(key, file string) {
		if d.Database == "" {
			t.line(`  %s: {connection_string: "file:%s"}`, key, file)
		}
	}
	t.line(`# Dendrite %s configuration, written by "wellknownd init" to agree with`, d.DendriteVersion)
	t.line(`# wellknownd.yaml: the same server name, the same delegation. Relative paths are`)
	t.line(`# relative to Dendrite's working directory (%s).`, d.DendriteDir)
	t.line(`version: 2`)
	t.line(`global:`)
	t.line(`  server_name: %s`, q(d.ServerName))
	t.line(`  private_key: matrix_key.pem`)
	t.line(`  key_validity_period: 168h0m0s`)
	if d.Database != "" {
		t.line(`  database:`)
		t.line(`    connection_string: %s`, q(d.Database))
		t.line(`    max_open_conns: 90`)
		t.line(`    max_idle_conns: 5`)
		t.line(`    conn_max_lifetime: -1`)
	}
	t.line(`  # What Dendrite itself would publish; wellknownd serves the documents, these keep them agreeing.`)
	t.line(`  well_known_server_name: %s`, q(d.MServer))
	t.line(`  well_known_client_name: %s`, q(d.BaseURL))
	t.WriteString(`  disable_federation: false
  presence: {enable_inbound: false, enable_outbound: false}
  trusted_third_party_id_servers: [matrix.org, vector.im]
  jetstream:
`)
	t.line(`    storage_path: %s`, q(d.StoragePath))
	t.WriteString(`    topic_prefix: Dendrite
  metrics: {enabled: false}
  dns_cache: {enabled: false, cache_size: 256, cache_lifetime: 5m0s}
  server_notices: {enabled: false, local_part: _server, display_name: Server Alerts, avatar_url: "", room_name: Server Alerts}
  report_stats: {enabled: false}
  cache: {max_size_estimated: 1073741824, max_age: 1h0m0s}
app_service_api:
  config_files: []
client_api:
  # Accounts are made with "wellknownd register" (shared-secret registration),
  # never by opening registration to the Internet.
  registration_disabled: true
`)
	t.line(`  registration_shared_secret: %s`, q(d.RegistrationSecret))
	t.WriteString(`  guests_disabled: true
  rate_limiting: {enabled: true, threshold: 5, cooloff_ms: 500, exempt_user_ids: []}
federation_api:
`)
	sqlite("database", "dendrite_federationapi.db")
	t.WriteString(`  send_max_retries: 16
  disable_tls_validation: false
  key_perspectives:
  - server_name: matrix.org
    keys:
    - {key_id: "ed25519:auto", public_key: Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw}
    - {key_id: "ed25519:a_RXGa", public_key: l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ}
  prefer_direct_fetch: false
`)
	if d.Database == "" {
		t.line(`key_server:`)
		sqlite("database", "dendrite_keyserver.db")
	}
	t.line(`media_api:`)
	sqlite("database", "dendrite_mediaapi.db")
	t.line(`  base_path: %s`, q(d.MediaPath))
	t.line(`  # wellknownd's upstream.max_body is set to the same size.`)
	t.line(`  max_file_size_bytes: %d`, d.MaxFileSize)
	t.WriteString(`  dynamic_thumbnails: false
  max_thumbnail_generators: 10
  thumbnail_sizes:
  - {width: 32, height: 32, method: crop}
  - {width: 96, height: 96, method: crop}
  - {width: 640, height: 480, method: scale}
room_server:
  default_room_version: "10"
`)
	sqlite("database", "dendrite_roomserver.db")
	t.line(`sync_api:`)
	sqlite("database", "dendrite_syncapi.db")
	t.WriteString(`  # wellknownd sets X-Forwarded-For from the real peer, and drops it from anyone else.
  real_ip_header: X-Forwarded-For
  search: {enabled: false, index_path: searchindex, in_memory: false, language: en}
user_api:
  bcrypt_cost: 10
  openid_token_lifetime_ms: 3600000
`)
	sqlite("account_database", "dendrite_userapi.db")
	t.line(`  auto_join_rooms: []`)
	if d.Database == "" {
		t.line(`relay_api:`)
		sqlite("database", "dendrite_relayapi.db")
	}
	t.line(`mscs:`)
	t.line(`  mscs: []`)
	sqlite("database", "dendrite_mscs.db")
	t.WriteString(`tracing: {enabled: false}
logging:
- {type: std, level: info}
`)
	return []byte(t.String())
}

// postgresInitSQL creates Dendrite's role and database (init, with
// -postgres).
func postgresInitSQL(d *templateData) []byte {
	var t text
	t.line(`-- Written by "wellknownd init": Dendrite's role and database.`)
	t.line(`-- Run it once as PostgreSQL's superuser; the shell reads the file, so it may`)
	t.line(`-- stay readable by root alone:  sudo -u postgres psql < postgres-init.sql`)
	t.line(`CREATE ROLE dendrite LOGIN PASSWORD %s;`, sq(d.PostgresPassword))
	t.line(`CREATE DATABASE dendrite OWNER dendrite ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;`)
	return []byte(t.String())
}

// composeOverrideYAML is the compose override adopt writes beside the
// compose file (adoptcompose.go): compose merges it by itself, so the
// operator's file is never edited and removing this one goes back. It is
// empty without d.Override.
func composeOverrideYAML(d *templateData) []byte {
	o := d.Override
	if o == nil {
		return nil
	}
	var t text
	t.line(`# Written by "wellknownd adopt": wellknownd in front of Dendrite (service %s)`, o.Dendrite)
	t.line(`# of %s. Every other service, volume, key and database stays as`, o.ComposeFile)
	t.line(`# it was. Needs Docker Compose v2.24 or later (!reset, !override).`)
	t.line(`# To go back: rm %s && docker compose up -d --remove-orphans`, o.File)
	t.line(`services:`)
	for _, p := range o.Ports {
		t.line(`  %s:`, p.Service)
		if len(p.Kept) == 0 {
			t.line(`    ports: !reset []   # was %s`, strings.Join(p.Taken, ", "))
			continue
		}
		t.line(`    ports: !override   # without %s`, strings.Join(p.Taken, ", "))
		for _, k := range p.Kept {
			t.line(`%s`, indent(6, k))
		}
	}
	t.line(`  wellknownd:`)
	t.line(`    image: wellknownd:latest`)
	t.line(`    build: %s   # when the image is not there yet`, yq(o.Build))
	t.line(`    restart: unless-stopped`)
	t.line(`    depends_on: [%s]`, o.Dendrite)
	t.line(`    ports: ["80:80", "443:443", "443:443/udp", "8448:8448", "8448:8448/udp"]   # UDP: HTTP/3`)
	t.line(`    volumes:`)
	t.line(`      # readable by the image's user (%d); it holds no secret`, o.ImageUser)
	t.line(`      - ./wellknownd.yaml:/etc/wellknownd/wellknownd.yaml:ro`)
	t.line(`      - wellknownd:/var/lib/wellknownd`)
	if d.TLSMode == "files" {
		// The two files, not their directory: Dendrite's directory holds
		// its signing key and secrets. acme.sh writes into the same files
		// on renewal, so the bind mounts see the new ones.
		t.line(`      # acme.sh writes into these files on renewal; its --reloadcmd runs`)
		t.line(`      # "docker compose kill -s HUP wellknownd"`)
		t.line(`      - %s:/etc/wellknownd/tls/cert.pem:ro`, yq(o.CertSource))
		t.line(`      - %s:/etc/wellknownd/tls/key.pem:ro`, yq(o.KeySource))
	}
	t.line(`    healthcheck:`)
	t.line(`      interval: 5s`)
	t.line(`      start_period: 30s`)
	t.line(`    networks: [%s]`, strings.Join(o.Networks, ", "))
	t.line(`volumes:`)
	t.line(`  wellknownd: {}`)
	return []byte(t.String())
}
