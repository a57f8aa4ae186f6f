package deploy

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// serviceUser is the system user a generated unit runs as when the
// deployment lives outside /var/lib.
const serviceUser = "wellknownd"

// SystemdSetup is how a generated unit is installed: the unit file and the
// commands an operator runs, in order, as root.
type SystemdSetup struct {
	Unit  []byte
	Steps []string
	// Warnings say what the operator should know about the directory.
	Warnings []string
}

// unitFor adapts the shipped unit to a deployment in dir (absolute, clean),
// whose files the service must read and, for Dendrite's data and the
// certificates, write.
//
// Under ProtectSystem=strict the whole file system is read-only for the
// service except its StateDirectory, /home and /root are invisible with
// ProtectHome=yes, and /tmp is private with PrivateTmp=yes. And a
// DynamicUser owns nothing outside the directories systemd manages for it
// (systemd changes their ownership at each start, and no other's). So:
//   - dir is /var/lib/NAME: StateDirectory=NAME and DynamicUser, as shipped;
//     systemd moves the directory that init wrote into /var/lib/private and
//     gives it to the dynamic user on the first start;
//   - anywhere else: a system user that owns dir, ReadWritePaths=dir, and
//     dir bound into the otherwise empty /home (ProtectHome=tmpfs) or
//     reachable past PrivateTmp where it lives there.
func unitFor(o Options, dir, configPath string) (SystemdSetup, error) {
	u := string(Unit())
	u = strings.ReplaceAll(u, "/usr/local/bin/wellknownd serve -config /etc/wellknownd/wellknownd.yaml",
		o.WellknowndBin+" serve -config "+configPath)
	// The configuration is in dir, not /etc/wellknownd.
	u = setDirective(u, "ConfigurationDirectory", "")
	if o.Postgres {
		u = setDirective(u, "After", "network-online.target postgresql.service")
		u = setDirective(u, "Wants", "network-online.target postgresql.service")
	}
	var s SystemdSetup
	install := []string{
		"install -m 644 " + filepath.Join(dir, "wellknownd.service") + " /etc/systemd/system/wellknownd.service",
		"systemctl daemon-reload && systemctl enable --now wellknownd",
	}
	if name, ok := strings.CutPrefix(dir, "/var/lib/"); ok && name != "" && !strings.Contains(name, "/") && name != "private" {
		u = setDirective(u, "StateDirectory", name)
		s.Unit, s.Steps = []byte(u), install
		return s, nil
	}
	// The service user is given the whole directory: never a top-level
	// one, or someone's home.
	depth := strings.Count(dir, "/")
	switch {
	case depth < 2 || dir == "/var/lib" || strings.HasPrefix(dir, "/var/lib/private") || (under(dir, "/home") && depth < 3):
		return s, fmt.Errorf("-dir %s: choose a directory of its own, such as /var/lib/wellknownd or /srv/matrix", dir)
	case strings.HasPrefix(dir, "/var/lib/"):
		return s, fmt.Errorf("-dir %s: under /var/lib only a directory directly below it works as the unit's StateDirectory; use /var/lib/%s", dir, strings.SplitN(strings.TrimPrefix(dir, "/var/lib/"), "/", 2)[0])
	}
	u = setDirective(u, "DynamicUser", "")
	u = setDirective(u, "StateDirectory", "")
	u = setDirective(u, "StateDirectoryMode", "")
	u = setDirective(u, "NoNewPrivileges", "yes\nUser="+serviceUser+"\nGroup="+serviceUser)
	u = setDirective(u, "ProtectSystem", "strict\n# The deployment directory is the one place the service writes.\nReadWritePaths="+dir)
	if under(dir, "/home") || under(dir, "/root") || under(dir, "/run/user") {
		u = setDirective(u, "ProtectHome", "tmpfs\nBindPaths="+dir)
	}
	if under(dir, "/tmp") || under(dir, "/var/tmp") {
		u = setDirective(u, "PrivateTmp", "no")
		s.Warnings = append(s.Warnings, dir+" is in a temporary directory, which a reboot or systemd-tmpfiles may empty: the signing key and the database would be lost")
	}
	s.Unit = []byte(u)
	s.Steps = append([]string{
		"useradd --system --user-group --home-dir " + dir + " --no-create-home --shell /usr/sbin/nologin " + serviceUser,
		"chown -R " + serviceUser + ":" + serviceUser + " " + dir,
	}, install...)
	return s, nil
}

// setDirective replaces the value of every line "Key=..." of a unit; an
// empty value removes the line.
func setDirective(unit, key, value string) string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=.*\n`)
	if value == "" {
		return re.ReplaceAllString(unit, "")
	}
	return re.ReplaceAllLiteralString(unit, key+"="+value+"\n")
}

func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}
