package deploy

// adopthost.go is adopt for a Dendrite that runs on this host, outside
// compose: wellknownd goes in front of it as init's systemd unit does, so
// this reuses init's unit, and all it owns is where Dendrite listens and
// what the operator must change there.

import (
	"fmt"
	"net/netip"
	"net/url"
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
	values.ConfigPath = cfgPath
	values.TLSStorage = filepath.Join(dir, "tls")
	values.UpstreamURL = upstream
	values.DendriteReady = upstream + "/_dendrite/monitor/up"
	if p.TLSMode == "files" {
		// The unit's working directory is not the operator's.
		values.CertFile, _ = filepath.Abs(p.CertFile)
		values.KeyFile, _ = filepath.Abs(p.KeyFile)
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
