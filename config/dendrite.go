package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

// dendriteConfigPath finds the -config (or --config) argument of a
// supervised command, resolved against its dir; "" when there is none.
func dendriteConfigPath(e Supervised) string {
	for i, a := range e.Command {
		var p string
		switch {
		case (a == "-config" || a == "--config") && i+1 < len(e.Command):
			p = e.Command[i+1]
		case strings.HasPrefix(a, "-config=") || strings.HasPrefix(a, "--config="):
			p = a[strings.IndexByte(a, '=')+1:]
		default:
			continue
		}
		if !filepath.IsAbs(p) && e.Dir != "" {
			p = filepath.Join(e.Dir, p)
		}
		return p
	}
	return ""
}

// validateDendrite reads the dendrite.yaml a supervised Dendrite is started
// with and reports where it disagrees with the delegation: the mismatches
// that otherwise surface as a federation tester's red line, or as users
// named @alice:wrong.example.
func (v *validator) validateDendrite() {
	for _, e := range v.cfg.Supervise {
		if len(e.Command) == 0 || !strings.Contains(filepath.Base(e.Command[0]), "dendrite") {
			continue
		}
		path := dendriteConfigPath(e)
		if path == "" {
			continue
		}
		d, err := LoadDendrite(path)
		var p yamlfile.Problem
		switch {
		case errors.As(err, &p):
			v.problems = append(v.problems, p)
			continue
		case err != nil:
			v.errf("supervise", "%s: Dendrite's configuration cannot be read: %v", e.Name, unwrapPathError(err))
			continue
		}
		c := v.cfg
		if got, line := d.Get("global.server_name"); got != c.ServerName {
			v.problems = append(v.problems, yamlfile.Problem{File: path, Line: line, Field: "global.server_name",
				Msg: fmt.Sprintf("is %q, but wellknownd's server_name is %q; users and rooms would be named after the wrong server", got, c.ServerName)})
		}
		if got, line := d.Get("global.well_known_server_name"); got != "" && !sameServer(got, c.Delegation.Delegated) {
			v.problems = append(v.problems, yamlfile.Problem{File: path, Line: line, Field: "global.well_known_server_name", Warning: true,
				Msg: fmt.Sprintf("is %q, but delegation.server is %q", got, c.Delegation.Server)})
		}
		if got, line := d.Get("global.well_known_client_name"); got != "" && strings.TrimSuffix(got, "/") != strings.TrimSuffix(c.Delegation.ClientBaseURL, "/") {
			v.problems = append(v.problems, yamlfile.Problem{File: path, Line: line, Field: "global.well_known_client_name", Warning: true,
				Msg: fmt.Sprintf("is %q, but delegation.client_base_url is %q", got, c.Delegation.ClientBaseURL)})
		}
		if got, line := d.Get("client_api.registration_shared_secret"); got == "" {
			v.problems = append(v.problems, yamlfile.Problem{File: path, Line: line, Field: "client_api.registration_shared_secret", Warning: true,
				Msg: "is empty; \"wellknownd register\" creates accounts with it, without opening registration"})
		}
		if got, line := d.Get("media_api.max_file_size_bytes"); got != "" {
			if n, err := strconv.ParseInt(got, 10, 64); err == nil && n > int64(c.Upstream.MaxBody) {
				v.problems = append(v.problems, yamlfile.Problem{File: path, Line: line, Field: "media_api.max_file_size_bytes", Warning: true,
					Msg: fmt.Sprintf("is %d, above upstream.max_body (%s): uploads between the two are refused at the edge", n, c.Upstream.MaxBody)})
			}
		}
	}
}

// sameServer compares a server name as dendrite.yaml writes it with the
// delegated one, a missing port meaning 8448.
func sameServer(a string, nb delegation.ServerName) bool {
	na, err := delegation.ParseServerName(a)
	if err != nil {
		return false
	}
	pa, pb := na.Port, nb.Port
	if pa == 0 {
		pa = 8448
	}
	if pb == 0 {
		pb = 8448
	}
	return strings.EqualFold(na.Host, nb.Host) && pa == pb
}

// LoadDendrite reads and parses a dendrite.yaml: the one loader of
// Dendrite's configuration, as yamlfile.Load with what an empty one lacks.
func LoadDendrite(path string) (yamlfile.File, error) {
	f, err := yamlfile.Load(path)
	var p yamlfile.Problem
	if errors.As(err, &p) && p.Msg == yamlfile.Empty {
		p.Msg = "is empty; Dendrite needs its configuration (wellknownd init writes one)"
		return f, p
	}
	return f, err
}

// DendriteConfig is the dendrite.yaml of the supervised Dendrite (the entry
// whose command is a dendrite binary with -config), or "".
func (c *Config) DendriteConfig() string {
	for _, e := range c.Supervise {
		if len(e.Command) > 0 && strings.Contains(filepath.Base(e.Command[0]), "dendrite") {
			if p := dendriteConfigPath(e); p != "" {
				return p
			}
		}
	}
	return ""
}

// DendriteSecrets reads from a dendrite.yaml its registration shared
// secret and the password in global.database.connection_string; either is
// "" when it has none.
func DendriteSecrets(dendriteYAML string) (secret, dbPassword string, err error) {
	d, err := LoadDendrite(dendriteYAML)
	if err != nil {
		return "", "", err
	}
	secret, _ = d.Get("client_api.registration_shared_secret")
	conn, _ := d.Get("global.database.connection_string")
	if u, err := url.Parse(conn); err == nil && u.User != nil {
		dbPassword, _ = u.User.Password()
	}
	return secret, dbPassword, nil
}

// RegistrationSecret reads client_api.registration_shared_secret from a
// Dendrite configuration file.
func RegistrationSecret(dendriteYAML string) (string, error) {
	secret, _, err := DendriteSecrets(dendriteYAML)
	if err != nil {
		return "", err
	}
	if secret == "" {
		return "", fmt.Errorf("%s has no client_api.registration_shared_secret; set one (and restart Dendrite) to create accounts without opening registration", dendriteYAML)
	}
	return secret, nil
}
