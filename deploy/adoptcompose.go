package deploy

// adoptcompose.go is adopt for a Dendrite that docker compose runs:
// wellknownd joins the project as one more service, written as an override
// file that compose merges by itself, so that the operator's compose file
// is never edited and going back is removing one file. composefile.go reads
// the project; this decides what changes in it.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

// imageUser is the user the wellknownd image runs as (distroless nonroot).
const imageUser = 65532

// compose fronts a Dendrite that docker compose runs: wellknownd.yaml and
// an override file beside the compose file, which add the wellknownd
// service to Dendrite's networks and move the public ports to it.
func (a *Adoption) compose(p *adoptPlan, o ComposeOptions) error {
	path, err := filepath.Abs(o.File)
	if err != nil {
		return err
	}
	proj, err := readCompose(path)
	if err != nil {
		return err
	}
	s, err := proj.dendriteService(o.Service, p.DendriteYAML)
	if err != nil {
		return err
	}
	switch {
	case s.networkMode != "":
		return yamlfile.Problems{{File: path, Line: s.line, Field: "services." + s.name + ".network_mode", Msg: fmt.Sprintf("is %q: wellknownd joins Dendrite's compose networks, and this one has none; run adopt without -compose and give -upstream", s.networkMode)}}
	case proj.service("wellknownd") != nil:
		return yamlfile.Problems{{File: path, Line: proj.service("wellknownd").line, Field: "services.wellknownd", Msg: "already exists: is wellknownd in front of it already?"}}
	case proj.volumes["wellknownd"]:
		return yamlfile.Problems{{File: path, Field: "volumes.wellknownd", Msg: "already exists; adopt keeps wellknownd's certificates in a volume of that name"}}
	}
	port, err := s.httpPort()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	a.Dir = dir
	upstream := fmt.Sprintf("http://%s:%d", s.name, port)
	values := p.templateData()
	values.Adopted = rel(dir, p.DendriteYAML) + " and " + filepath.Base(path)
	values.TLSStorage = "/var/lib/wellknownd"
	values.UpstreamURL = upstream
	values.DendriteReady = upstream + "/_dendrite/monitor/up"
	override := filepath.Base(path)
	ext := filepath.Ext(override)
	override = strings.TrimSuffix(override, ext) + ".override" + ext
	composeCmd := "docker compose"
	if !slices.Contains([]string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}, filepath.Base(path)) {
		// compose finds the override of a file by its default names only.
		composeCmd = "docker compose -f " + filepath.Base(path) + " -f " + override
	}
	values.ValidateCmd = composeValidate(composeCmd)
	if p.TLSMode == "files" {
		// validate reads the files the container will read: what the
		// override mounts there.
		values.CertFile, _ = filepath.Abs(p.CertFile)
		values.KeyFile, _ = filepath.Abs(p.KeyFile)
		a.check = wellknowndYAML(values)
	}
	// Where the override mounts them (with TLSMode files).
	values.CertFile, values.KeyFile = "/etc/wellknownd/tls/cert.pem", "/etc/wellknownd/tls/key.pem"
	cfg := wellknowndYAML(values)
	if a.check == nil {
		a.check = cfg
	}
	ov := &composeOverride{ComposeFile: filepath.Base(path), File: override, Dendrite: s.name, ImageUser: imageUser, Networks: s.networks}

	// The ports: Dendrite publishes none any more (its plain HTTP would
	// bypass the edge), and whoever published 80, 443 or 8448 gives them
	// up to wellknownd.
	for _, svc := range proj.services {
		change := portChange{Service: svc.name}
		for _, n := range svc.ports {
			if svc == s || slices.ContainsFunc(publishedPorts(n), func(p int) bool { return p == 80 || p == 443 || p == 8448 }) {
				change.Taken = append(change.Taken, portText(n))
			} else {
				change.Kept = append(change.Kept, yamlItem(n))
			}
		}
		if len(change.Taken) == 0 {
			continue
		}
		ov.Ports = append(ov.Ports, change)
		why := "wellknownd publishes them now"
		if svc == s {
			why = "Dendrite is reached through wellknownd, on the project network"
		}
		a.Changes = append(a.Changes, fmt.Sprintf("service %s stops publishing %s: %s", svc.name, strings.Join(change.Taken, ", "), why))
	}
	ov.Build = "https://github.com/wellknownd/wellknownd.git"
	if o.Source != "" {
		if ov.Build, err = filepath.Abs(o.Source); err != nil {
			return err
		}
	}
	if p.TLSMode == "files" {
		ov.CertSource, ov.KeySource = mountSource(dir, p.CertFile), mountSource(dir, p.KeyFile)
		if need := keyAccess(p.KeyFile); need != "" {
			a.Before = append(a.Before, need)
		}
	}
	values.Override = ov
	overrideText := composeOverrideYAML(values)
	a.Changes = append(a.Changes, fmt.Sprintf("a new service wellknownd publishes 80, 443 and 8448 (and 443 and 8448 over UDP, for HTTP/3), joins the network %s and proxies to Dendrite at %s; its certificates and ACME account live in the volume wellknownd",
		strings.Join(s.networks, ", "), upstream))
	for _, svc := range proj.services {
		if svc != s {
			a.Kept = append(a.Kept, "service "+svc.name+" and its volumes")
		}
	}
	a.Kept = append(a.Kept, fmt.Sprintf("service %s's image, command and volumes; %s", s.name, filepath.Base(path)))
	a.Files = []File{{"wellknownd.yaml", cfg, 0o644}, {override, overrideText, 0o644}}
	cd := "cd " + dir + " && "
	a.Start = []string{cd + composeCmd + " up -d --wait"}
	a.Rollback = []string{cd + "rm " + override + " && docker compose up -d --remove-orphans"}
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

// portText is a ports: entry on one line, for what adopt says it changes.
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

// yamlItem is n as an item of a YAML sequence, as compose reads it.
func yamlItem(n *yaml.Node) string {
	b, _ := yaml.Marshal([]*yaml.Node{n})
	return strings.TrimSuffix(string(b), "\n")
}

// composeValidate is the command that validates wellknownd.yaml as the
// container reads it, its mounts in place, in the compose file's
// directory: the image's entrypoint is wellknownd.
func composeValidate(composeCmd string) string {
	return composeCmd + " run --rm --no-deps wellknownd validate -config /etc/wellknownd/wellknownd.yaml"
}
