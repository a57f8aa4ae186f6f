package deploy

// adopthost.go is adopt for a Dendrite that runs on this host, outside
// compose: wellknownd goes in front of it as init's systemd unit does, so
// this reuses init's unit, and all it owns is where Dendrite listens and
// what the operator must change there.

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
)

// host fronts a Dendrite that runs on this host: wellknownd.yaml and a
// unit in o.Dir, proxying to o.Upstream.
func (a *Adoption) host(p *adoptPlan, o HostOptions) error {
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
	values := p.templateData()
	values.Adopted = p.DendriteYAML
	values.ValidateCmd = "wellknownd validate -config " + cfgPath
	values.TLSStorage = filepath.Join(dir, "tls")
	values.UpstreamURL = upstream
	values.DendriteReady = upstream + "/_dendrite/monitor/up"
	if p.TLSMode == "files" {
		// The unit's working directory is not the operator's.
		values.CertFile, _ = filepath.Abs(p.CertFile)
		values.KeyFile, _ = filepath.Abs(p.KeyFile)
	}
	cfg := wellknowndYAML(values)
	a.check = cfg
	sd, err := unitFor(Options{WellknowndBin: o.WellknowndBin}, dir, cfgPath)
	if err != nil {
		return err
	}
	var keySteps []string
	if p.TLSMode == "files" {
		sd.Unit, keySteps = unitReadsKey(sd.Unit, values.CertFile, values.KeyFile)
	}
	a.Files = []File{{"wellknownd.yaml", cfg, 0o644}, {"wellknownd.service", sd.Unit, 0o644}}
	a.Warnings = append(a.Warnings, sd.Warnings...)
	if ip, err := netip.ParseAddr(u.Hostname()); (err != nil && u.Hostname() != "localhost") || (err == nil && !ip.IsLoopback()) {
		a.Warnings = append(a.Warnings, fmt.Sprintf("Dendrite listens on %s, not on loopback: whoever reaches it there bypasses the edge and its limits", u.Host))
	}
	a.Before = append(keySteps, fmt.Sprintf("restart Dendrite listening only on %s (-http-bind-address %s, without -tls-cert/-tls-key): wellknownd takes ports 80, 443 and 8448", u.Host, u.Host))
	a.Start = sd.Steps
	a.Changes = []string{"wellknownd listens on 80, 443 and 8448 and proxies to Dendrite at " + upstream}
	a.Rollback = []string{"systemctl disable --now wellknownd && rm /etc/systemd/system/wellknownd.service", "restart Dendrite with the listeners it had"}
	return nil
}

// keyGroup is the group that may read the certificate's key; the unit
// joins it.
const keyGroup = "wellknownd-tls"

// unitReadsKey lets the unit read the certificate and key that acme.sh (or
// another client) keeps where they are: the key through a group the unit
// joins (its user is a dynamic one, or wellknownd, never the key's owner),
// and both files bound into the unit's view when they live under /home or
// /root, which ProtectHome hides. It returns the commands that give the
// key to the group, "" when the key is readable by everyone already.
// acme.sh writes a renewed key into the same file, which keeps the group
// and mode set here.
func unitReadsKey(unit []byte, certFile, keyFile string) ([]byte, []string) {
	u := string(unit)
	u = setDirective(u, "NoNewPrivileges", "yes\n# The certificate's key is readable by this group (adopt -tls files).\nSupplementaryGroups="+keyGroup)
	hidden := false
	for _, f := range []string{certFile, keyFile} {
		hidden = hidden || under(f, "/home") || under(f, "/root") || under(f, "/run/user")
	}
	if hidden {
		u = setDirective(u, "ProtectHome", "tmpfs\nBindReadOnlyPaths="+certFile+" "+keyFile)
	}
	var steps []string
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm()&0o004 == 0 {
		steps = append(steps, "groupadd -f --system "+keyGroup, "chgrp "+keyGroup+" "+keyFile+" && chmod 640 "+keyFile)
	}
	return []byte(u), steps
}
