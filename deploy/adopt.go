package deploy

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

// AdoptOptions say which existing Dendrite to put wellknownd in front of,
// and how ("wellknownd adopt").
type AdoptOptions struct {
	// DendriteConfig is the dendrite.yaml the homeserver runs with. It is
	// read, never written.
	DendriteConfig string
	// ServerName, when given, must be dendrite.yaml's global.server_name:
	// a guard against adopting another server's configuration.
	ServerName string
	// Delegate is the host that serves the homeserver (matrix.example.com).
	// Default: the host of global.well_known_server_name, else of
	// global.well_known_client_name.
	Delegate string
	// Compose is the compose file that runs Dendrite. Empty: Dendrite runs
	// on this host, and a systemd unit fronts it at Upstream.
	Compose string
	// Service is Dendrite's compose service, when it cannot be told from
	// its image or its mounts.
	Service string
	// Upstream is Dendrite's HTTP listener on this host (without Compose).
	// Default: http://127.0.0.1:8008.
	Upstream string
	// Dir is where the configuration and the unit go (without Compose);
	// with Compose they go beside the compose file.
	Dir string
	// TLSMode is acme (default), files (CertFile and KeyFile, e.g. what
	// acme.sh installs) or internal.
	TLSMode, CertFile, KeyFile string
	// Email is the ACME account's contact; default admin@SERVER_NAME.
	Email string
	// Site is the web server that answers on the server name's host
	// outside /.well-known/matrix, when there is one to keep.
	Site string
	// Source is a clone of wellknownd the compose service builds from;
	// default the public repository.
	Source string
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
	// Changes say what changes in the running deployment once it starts.
	Changes []string
	// Kept say what stays as it was (identity, data, other services).
	Kept []string
	// DendriteEdits are lines of dendrite.yaml that the operator should
	// change, and why; adopt never writes that file.
	DendriteEdits []yamlfile.Problem
	// Before are commands to run before Start; Start starts it; Rollback
	// goes back to how it was.
	Before, Start, Rollback []string
	Warnings                []string
}

// dendriteDefaultMaxFile is Dendrite's media_api.max_file_size_bytes when
// its configuration does not set it.
const dendriteDefaultMaxFile = 10 << 20

// imageUser is the user the wellknownd image runs as (distroless nonroot).
const imageUser = 65532

// Adopt reads an existing Dendrite deployment and makes the files that put
// wellknownd in front of it. It writes nothing; every problem with the
// input is an error that names its file (and line where there is one).
func Adopt(o AdoptOptions) (*Adoption, error) {
	d, err := config.LoadDendrite(o.DendriteConfig)
	if err != nil {
		var p yamlfile.Problem
		if errors.As(err, &p) {
			return nil, yamlfile.Problems{p}
		}
		return nil, fmt.Errorf("the Dendrite configuration: %w", err)
	}
	a := &Adoption{}
	name, line := d.Get("global.server_name")
	problem := func(line int, field, format string, args ...any) error {
		return yamlfile.Problems{{File: d.Path, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}}
	}
	switch {
	case name == "":
		return nil, problem(line, "global.server_name", "is not set: is this Dendrite's configuration?")
	case o.ServerName != "" && !strings.EqualFold(o.ServerName, name):
		return nil, problem(line, "global.server_name", "is %q, not %q (-server-name): this is another server's configuration", name, o.ServerName)
	}
	if _, err := delegation.ParseHostname(name); err != nil {
		return nil, problem(line, "global.server_name", "%q %v; wellknownd delegates a server name without a port", name, err)
	}
	a.ServerName = name

	// Where the homeserver is served: what Dendrite's own well-known
	// settings say, unless the operator says otherwise.
	wkServer, wkServerLine := d.Get("global.well_known_server_name")
	wkClient, wkClientLine := d.Get("global.well_known_client_name")
	delegate := o.Delegate
	if delegate == "" {
		if sn, err := delegation.ParseServerName(wkServer); wkServer != "" && err == nil {
			delegate = sn.Host
		} else if u, err := url.Parse(wkClient); wkClient != "" && err == nil && u.Hostname() != "" {
			delegate = u.Hostname()
		} else {
			return nil, problem(wkServerLine, "global.well_known_server_name", "is not set, and neither is global.well_known_client_name: say which host serves the homeserver with -delegate (what %s/.well-known/matrix/server names today, e.g. matrix.%s)", name, name)
		}
	}
	if _, err := delegation.ParseHostname(delegate); err != nil {
		return nil, fmt.Errorf("-delegate %q %w", delegate, err)
	}
	a.Delegate = delegate
	// wellknownd serves federation on 443 and 8448, so a delegation to
	// either port of the same host stays true and is kept: remote servers
	// have it cached.
	mServer := delegate + ":443"
	if sn, err := delegation.ParseServerName(wkServer); err == nil && strings.EqualFold(sn.Host, delegate) && (sn.Port == 0 || sn.Port == 443 || sn.Port == 8448) {
		mServer = wkServer
	}
	baseURL := "https://" + delegate
	hosts := hostList(name, delegate)
	if wkServer != "" && mServer != wkServer {
		a.DendriteEdits = append(a.DendriteEdits, yamlfile.Problem{File: d.Path, Line: wkServerLine, Field: "global.well_known_server_name",
			Msg: fmt.Sprintf("is %q; wellknownd answers /.well-known/matrix/server with %q now. Set it to that, or remove it, so that the two never disagree", wkServer, mServer)})
	}
	if wkClient != "" && strings.TrimSuffix(wkClient, "/") != baseURL {
		a.DendriteEdits = append(a.DendriteEdits, yamlfile.Problem{File: d.Path, Line: wkClientLine, Field: "global.well_known_client_name",
			Msg: fmt.Sprintf("is %q; wellknownd answers /.well-known/matrix/client with %q now (its port 8448 serves federation only). Set it to that, or remove it", wkClient, baseURL)})
	}
	if h, line := d.Get("sync_api.real_ip_header"); h != "X-Forwarded-For" {
		msg := "is not set"
		if h != "" {
			msg = fmt.Sprintf("is %q, which wellknownd does not send", h)
		}
		a.DendriteEdits = append(a.DendriteEdits, yamlfile.Problem{File: d.Path, Line: line, Field: "sync_api.real_ip_header",
			Msg: msg + ": set it to X-Forwarded-For (and restart Dendrite), or every device's last-seen address is wellknownd's. wellknownd sets that header to the client's address and drops what untrusted clients send in it"})
	}

	maxBody := config.Size(dendriteDefaultMaxFile)
	if v, line := d.Get("media_api.max_file_size_bytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil || n < 0:
			return nil, problem(line, "media_api.max_file_size_bytes", "%q is not a byte count", v)
		case n == 0:
			maxBody = 1 << 30
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s:%d: media_api.max_file_size_bytes is 0 (no limit); wellknownd's upstream.max_body cannot be unlimited and is set to 1GiB", d.Path, line))
		default:
			maxBody = config.Size(n)
		}
	}

	// The identity stays: adopt reads the signing key's ID to say so, and
	// never writes the file.
	keyPath, _ := d.Get("global.private_key")
	if keyPath == "" {
		keyPath = "matrix_key.pem"
	}
	if !filepath.IsAbs(keyPath) {
		keyPath = filepath.Join(filepath.Dir(d.Path), keyPath)
	}
	if b, err := os.ReadFile(keyPath); err == nil {
		if blk, _ := pem.Decode(b); blk != nil && blk.Headers["Key-ID"] != "" {
			a.Kept = append(a.Kept, fmt.Sprintf("the signing key %s (%s): the server's identity in federation", blk.Headers["Key-ID"], keyPath))
		}
	} else {
		a.Kept = append(a.Kept, fmt.Sprintf("the signing key (%s): the server's identity in federation", keyPath))
	}
	a.Kept = append(a.Kept, d.Path+", its database and its media")

	email := o.Email
	if email == "" {
		email = "admin@" + name
	}
	values := &templateData{
		ServerName: name, MServer: mServer, BaseURL: baseURL, Hosts: hosts, Site: o.Site,
		Email: email, MaxBody: maxBody.String(), TLSMode: o.TLSMode,
	}
	switch o.TLSMode {
	case "", "acme":
		values.TLSMode = "acme"
	case "internal":
	case "files":
		if err := checkCertificate(o.CertFile, o.KeyFile, hosts); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("-tls %q: use acme, files or internal", o.TLSMode)
	}
	if o.Site != "" {
		if u, err := url.Parse(o.Site); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("-site %q: give the web site's own server as an http:// or https:// URL", o.Site)
		}
	}
	if o.Compose != "" {
		err = a.compose(o, d, values)
	} else {
		err = a.host(o, values)
	}
	if err != nil {
		return nil, err
	}
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

// compose fronts a Dendrite that docker compose runs: wellknownd.yaml and
// an override file beside the compose file, which add the wellknownd
// service to Dendrite's networks and move the public ports to it.
func (a *Adoption) compose(o AdoptOptions, d yamlfile.File, values *templateData) error {
	path, err := filepath.Abs(o.Compose)
	if err != nil {
		return err
	}
	p, err := readCompose(path)
	if err != nil {
		return err
	}
	s, err := p.dendriteService(o.Service, d.Path)
	if err != nil {
		return err
	}
	switch {
	case s.networkMode != "":
		return yamlfile.Problems{{File: path, Line: s.line, Field: "services." + s.name + ".network_mode", Msg: fmt.Sprintf("is %q: wellknownd joins Dendrite's compose networks, and this one has none; run adopt without -compose and give -upstream", s.networkMode)}}
	case p.service("wellknownd") != nil:
		return yamlfile.Problems{{File: path, Line: p.service("wellknownd").line, Field: "services.wellknownd", Msg: "already exists: is wellknownd in front of it already?"}}
	case p.volumes["wellknownd"]:
		return yamlfile.Problems{{File: path, Field: "volumes.wellknownd", Msg: "already exists; adopt keeps wellknownd's certificates in a volume of that name"}}
	}
	port, err := s.httpPort()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	a.Dir = dir
	upstream := fmt.Sprintf("http://%s:%d", s.name, port)
	values.Adopted = rel(dir, d.Path) + " and " + filepath.Base(path)
	values.ConfigPath = "/etc/wellknownd/wellknownd.yaml"
	values.TLSStorage = "/var/lib/wellknownd"
	values.UpstreamURL = upstream
	values.DendriteReady = upstream + "/_dendrite/monitor/up"
	values.CertFile, values.KeyFile = "/etc/wellknownd/tls/cert.pem", "/etc/wellknownd/tls/key.pem"
	cfg, err := render("wellknownd.yaml.tmpl", values)
	if err != nil {
		return err
	}

	// The ports: Dendrite publishes none any more (its plain HTTP would
	// bypass the edge), and whoever published 80, 443 or 8448 gives them
	// up to wellknownd.
	var o2 strings.Builder
	override := filepath.Base(path)
	ext := filepath.Ext(override)
	override = strings.TrimSuffix(override, ext) + ".override" + ext
	fmt.Fprintf(&o2, "# Written by \"wellknownd adopt\": wellknownd in front of Dendrite (service %s)\n", s.name)
	fmt.Fprintf(&o2, "# of %s. Every other service, volume, key and database stays as\n# it was. Needs Docker Compose v2.24 or later (!reset, !override).\n", filepath.Base(path))
	fmt.Fprintf(&o2, "# To go back: rm %s && docker compose up -d --remove-orphans\nservices:\n", override)
	for _, svc := range p.services {
		var keep []*yaml.Node
		var taken []string
		for _, n := range svc.ports {
			pub := publishedPorts(n)
			if svc == s || slices.ContainsFunc(pub, func(p int) bool { return p == 80 || p == 443 || p == 8448 }) {
				taken = append(taken, portText(n))
			} else {
				keep = append(keep, n)
			}
		}
		if len(taken) == 0 {
			continue
		}
		fmt.Fprintf(&o2, "  %s:\n", svc.name)
		if len(keep) == 0 {
			fmt.Fprintf(&o2, "    ports: !reset []   # was %s\n", strings.Join(taken, ", "))
		} else {
			fmt.Fprintf(&o2, "    ports: !override   # without %s\n", strings.Join(taken, ", "))
			for _, n := range keep {
				b, _ := yaml.Marshal([]*yaml.Node{n})
				o2.WriteString(indent(string(b), "      "))
			}
		}
		why := "wellknownd publishes them now"
		if svc == s {
			why = "Dendrite is reached through wellknownd, on the project network"
		}
		a.Changes = append(a.Changes, fmt.Sprintf("service %s stops publishing %s: %s", svc.name, strings.Join(taken, ", "), why))
	}
	build := "https://github.com/wellknownd/wellknownd.git"
	if o.Source != "" {
		if build, err = filepath.Abs(o.Source); err != nil {
			return err
		}
	}
	fmt.Fprintf(&o2, `  wellknownd:
    image: wellknownd:latest
    build: %s   # when the image is not there yet
    restart: unless-stopped
    depends_on: [%s]
    ports: ["80:80", "443:443", "443:443/udp", "8448:8448", "8448:8448/udp"]   # UDP: HTTP/3
    volumes:
      # readable by the image's user (%d); it holds no secret
      - ./wellknownd.yaml:/etc/wellknownd/wellknownd.yaml:ro
      - wellknownd:/var/lib/wellknownd
`, yamlQuote(build), s.name, imageUser)
	if values.TLSMode == "files" {
		// The two files, not their directory: Dendrite's directory holds its
		// signing key and secrets. acme.sh writes into the same files on
		// renewal, so the bind mounts see the new ones.
		fmt.Fprintf(&o2, "      # acme.sh writes into these files on renewal; its --reloadcmd runs\n      # \"docker compose kill -s HUP wellknownd\"\n      - %s:/etc/wellknownd/tls/cert.pem:ro\n      - %s:/etc/wellknownd/tls/key.pem:ro\n",
			yamlQuote(mountSource(dir, o.CertFile)), yamlQuote(mountSource(dir, o.KeyFile)))
		if need := keyAccess(o.KeyFile); need != "" {
			a.Before = append(a.Before, need)
		}
	}
	fmt.Fprintf(&o2, "    healthcheck:\n      interval: 5s\n      start_period: 30s\n    networks: [%s]\nvolumes:\n  wellknownd: {}\n", strings.Join(s.networks, ", "))
	a.Changes = append(a.Changes, fmt.Sprintf("a new service wellknownd publishes 80, 443 and 8448 (and 443 and 8448 over UDP, for HTTP/3), joins the network %s and proxies to Dendrite at %s; its certificates and ACME account live in the volume wellknownd",
		strings.Join(s.networks, ", "), upstream))
	for _, svc := range p.services {
		if svc != s {
			a.Kept = append(a.Kept, "service "+svc.name+" and its volumes")
		}
	}
	a.Kept = append(a.Kept, fmt.Sprintf("service %s's image, command and volumes; %s", s.name, filepath.Base(path)))
	a.Files = []File{{"wellknownd.yaml", cfg, 0o644}, {override, []byte(o2.String()), 0o644}}
	cd := "cd " + dir + " && "
	composeCmd := "docker compose"
	if !slices.Contains([]string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}, filepath.Base(path)) {
		// compose finds the override of a file by its default names only.
		composeCmd = "docker compose -f " + filepath.Base(path) + " -f " + override
	}
	a.Start = []string{cd + composeCmd + " up -d --wait"}
	a.Rollback = []string{cd + "rm " + override + " && docker compose up -d --remove-orphans"}
	return nil
}

// host fronts a Dendrite that runs on this host: wellknownd.yaml and a
// unit in Dir, proxying to Upstream.
func (a *Adoption) host(o AdoptOptions, values *templateData) error {
	upstream := o.Upstream
	if upstream == "" {
		upstream = "http://127.0.0.1:8008"
	}
	u, err := url.Parse(upstream)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("-upstream %q: give Dendrite's plain HTTP listener, e.g. http://127.0.0.1:8008", upstream)
	}
	upstream = "http://" + u.Host
	dirArg := o.Dir
	if dirArg == "" {
		dirArg = "/var/lib/wellknownd"
	}
	dir, err := filepath.Abs(dirArg)
	if err != nil {
		return err
	}
	a.Dir = dir
	cfgPath := filepath.Join(dir, "wellknownd.yaml")
	values.Adopted = o.DendriteConfig
	values.ConfigPath = cfgPath
	values.TLSStorage = filepath.Join(dir, "tls")
	values.UpstreamURL = upstream
	values.DendriteReady = upstream + "/_dendrite/monitor/up"
	if values.TLSMode == "files" {
		cert, _ := filepath.Abs(o.CertFile)
		key, _ := filepath.Abs(o.KeyFile)
		values.CertFile, values.KeyFile = cert, key
	}
	cfg, err := render("wellknownd.yaml.tmpl", values)
	if err != nil {
		return err
	}
	sd, err := unitFor(Options{WellknowndBin: o.WellknowndBin}, dir, cfgPath)
	if err != nil {
		return err
	}
	a.Files = []File{{"wellknownd.yaml", cfg, 0o644}, {"wellknownd.service", sd.Unit, 0o644}}
	a.Warnings = append(a.Warnings, sd.Warnings...)
	if ip, err := netip.ParseAddr(u.Hostname()); (err != nil && u.Hostname() != "localhost") || (err == nil && !ip.IsLoopback()) {
		a.Warnings = append(a.Warnings, fmt.Sprintf("Dendrite listens on %s, not on loopback: whoever reaches it there bypasses the edge and its limits", u.Host))
	}
	a.Before = []string{fmt.Sprintf("restart Dendrite listening only on %s (-http-bind-address %s, without -tls-cert/-tls-key): wellknownd takes ports 80, 443 and 8448", u.Host, u.Host)}
	a.Start = sd.Steps
	a.Changes = []string{"wellknownd listens on 80, 443 and 8448 and proxies to Dendrite at " + upstream}
	a.Rollback = []string{"systemctl disable --now wellknownd && rm /etc/systemd/system/wellknownd.service", "restart Dendrite with the listeners it had"}
	return nil
}

// keyAccess returns the command that lets the image's user read a key
// file, or "" when it already can. acme.sh creates its key files 0600 and
// later writes into them in place, keeping the mode and owner set here.
func keyAccess(keyFile string) string {
	fi, err := os.Stat(keyFile)
	if err != nil {
		return ""
	}
	mode := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if mode&0o004 != 0 || (ok && st.Uid == imageUser && mode&0o400 != 0) || (ok && st.Gid == imageUser && mode&0o040 != 0) {
		return ""
	}
	abs, _ := filepath.Abs(keyFile)
	return fmt.Sprintf("chgrp %d %s && chmod 640 %s", imageUser, abs, abs)
}

// mountSource is a bind mount's source as compose wants it: relative to
// the compose file's directory when inside it.
func mountSource(dir, path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if r := rel(dir, abs); r != abs {
		return "./" + r
	}
	return abs
}

// rel is path relative to dir when that is shorter to read.
func rel(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func portText(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	var parts []string
	for _, kv := range pairs(n) {
		parts = append(parts, kv[0].Value+"="+kv[1].Value)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

func yamlQuote(s string) string {
	b, _ := yaml.Marshal(s)
	return strings.TrimSuffix(string(b), "\n")
}
