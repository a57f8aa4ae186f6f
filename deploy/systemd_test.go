package deploy_test

import (
	"bufio"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/deploytest"
)

// printedSteps are the indented lines init prints under heading.
func printedSteps(t *testing.T, out, heading string) string {
	t.Helper()
	var steps []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for found := false; sc.Scan(); {
		line := sc.Text()
		if line == heading {
			found = true
			continue
		}
		if found {
			step, ok := strings.CutPrefix(line, "  ")
			if !ok {
				break
			}
			steps = append(steps, step)
		}
	}
	if len(steps) == 0 {
		t.Fatalf("init printed no %q:\n%s", heading, out)
	}
	return strings.Join(steps, "\n")
}

// internalTLS turns a generated config from ACME (no public name here) to
// the local CA, as a user trying it without a domain would.
const internalTLS = `sed -i -e 's/^  mode: acme$/  mode: internal/' -e '/^  email: /d' -e '/^  ca: /d' -e '/^  challenges: /d' `

// curlTLS asks the daemon in the container for a document over HTTPS,
// trusting only the local CA whose root is at root.
func curlTLS(root, host, path string) string {
	return "curl -fsS --cacert " + root + " --resolve " + host + ":443:127.0.0.1 https://" + host + path
}

// waitFor polls a shell condition in the container, for up to n tenths
// of a second.
func waitFor(cond string, tenths int) string {
	return "for i in $(seq " + strconv.Itoa(tenths) + "); do if " + cond + "; then break; fi; sleep 0.1; done; " + cond
}

// TestSystemdDeployment installs wellknownd on a machine booted with
// systemd, as the README and init say, and checks what an operator
// would: the shipped unit with a config in /etc/wellknownd, then the unit
// init writes, in /var/lib and in /srv, with Dendrite supervised.
func TestSystemdDeployment(t *testing.T) {
	t.Parallel()
	start := time.Now()
	bin := deploytest.Build(t, t.TempDir())
	dendrite := filepath.Join(dendritetest.Binaries(t), "dendrite")
	m := deploytest.BootSystemd(t)
	t.Logf("systemd booted after %v", time.Since(start).Round(time.Second))
	m.Sh(t, "mkdir -p /root/src/deploy/systemd")
	m.Copy(bin, "/root/src/wellknownd")
	m.Copy(filepath.Join(deploytest.Root(), "deploy/systemd/wellknownd.service"), "/root/src/deploy/systemd/wellknownd.service")
	m.Copy(dendrite, "/usr/local/bin/dendrite")
	m.Sh(t, "install -m 755 /root/src/wellknownd /usr/local/bin/wellknownd")

	t.Run("shipped unit", func(t *testing.T) {
		m.Sh(t, `cat > /root/src/wellknownd.yaml <<'EOF'
server_name: example.com
delegation:
  server: matrix.example.com:443
  client_base_url: https://matrix.example.com
hosts: [example.com, matrix.example.com]
tls: {mode: internal}
EOF`)
		m.Sh(t, "cd /root/src\n"+docBlock(t, "systemd-install"))
		root := "/var/lib/wellknownd/internal-ca/root.crt"
		// Type=notify: "active" means READY=1 arrived.
		if got := m.Sh(t, "systemctl is-active wellknownd; systemctl show -p StatusText --value wellknownd"); !strings.HasPrefix(got, "active\nserving example.com, matrix.example.com") {
			t.Fatalf("not active with a status from sd_notify: %q", got)
		}
		if uid := strings.TrimSpace(m.Sh(t, "stat -c %u /proc/$(systemctl show -p MainPID --value wellknownd)")); uid == "0" {
			t.Fatal("the daemon runs as root")
		} else if user := strings.TrimSpace(m.Sh(t, "systemctl show -p DynamicUser --value wellknownd")); user != "yes" {
			t.Fatalf("DynamicUser=%s", user)
		}
		if got := m.Sh(t, curlTLS(root, "example.com", "/.well-known/matrix/server")); got != `{"m.server":"matrix.example.com:443"}` {
			t.Fatalf("server document over HTTPS: %q", got)
		}
		// systemctl reload: a changed document is served, nothing restarted.
		pid := m.Sh(t, "systemctl show -p MainPID --value wellknownd")
		m.Sh(t, `sed -i 's|^delegation:$|delegation:\n  identity_server: https://id.example.com|' /etc/wellknownd/wellknownd.yaml && systemctl reload wellknownd`)
		m.Sh(t, waitFor(curlTLS(root, "example.com", "/.well-known/matrix/client")+" | grep -q id.example.com", 50))
		if again := m.Sh(t, "systemctl show -p MainPID --value wellknownd"); again != pid {
			t.Fatalf("reload restarted the daemon: pid %s → %s", pid, again)
		}
		// The certificate in the state directory survives a restart.
		fingerprint := "openssl s_client -connect 127.0.0.1:443 -servername example.com </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
		before := m.Sh(t, fingerprint)
		m.Sh(t, "systemctl restart wellknownd && systemctl is-active wellknownd")
		if after := m.Sh(t, fingerprint); after != before || !strings.Contains(after, "Fingerprint") {
			t.Fatalf("certificate changed across a restart:\n%s\n%s", before, after)
		}

		// acme.sh users: the README's recipe, with a stand-in for acme.sh
		// (not packaged here) that does what its --install-cert does —
		// "cat new > installed file", then the reload command.
		m.Sh(t, `mkdir -p /root/acme && cat > /usr/local/bin/acme.sh <<'EOF'
#!/bin/bash
set -eu
while [ $# -gt 0 ]; do
	case "$1" in
	--key-file) key=$2; shift ;;
	--fullchain-file) chain=$2; shift ;;
	--reloadcmd) reload=$2; shift ;;
	esac
	shift
done
cat "$ACME_KEY" > "$key"
cat "$ACME_CHAIN" > "$chain"
bash -c "$reload"
EOF
chmod 755 /usr/local/bin/acme.sh`)
		issue := func(n string) string {
			m.Sh(t, "cd /root/acme && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k"+n+".pem -out c"+n+".pem -days 30 "+
				"-subj /CN=matrix.example.com -addext subjectAltName=DNS:example.com,DNS:matrix.example.com 2>/dev/null")
			return m.Sh(t, "openssl x509 -noout -fingerprint -sha256 -in /root/acme/c"+n+".pem")
		}
		first := issue("1")
		m.Sh(t, "export ACME_KEY=/root/acme/k1.pem ACME_CHAIN=/root/acme/c1.pem\n"+docBlock(t, "acme-sh"))
		m.Sh(t, `sed -i 's|^tls: {mode: internal}$|tls: {mode: files, cert_file: /etc/wellknownd/tls/fullchain.pem, key_file: /etc/wellknownd/tls/key.pem}|' /etc/wellknownd/wellknownd.yaml`)
		m.Sh(t, docBlock(t, "acme-sh-restart"))
		if got := m.Sh(t, fingerprint); got != first {
			t.Fatalf("the acme.sh certificate is not served:\n%s\nwant\n%s", got, first)
		}
		// A renewal: acme.sh's cron job installs the new pair and reloads;
		// the same process serves it, and the key kept its group and mode.
		pid = m.Sh(t, "systemctl show -p MainPID --value wellknownd")
		second := issue("2")
		m.Sh(t, `ACME_KEY=/root/acme/k2.pem ACME_CHAIN=/root/acme/c2.pem acme.sh --install-cert -d matrix.example.com --ecc `+
			`--key-file /etc/wellknownd/tls/key.pem --fullchain-file /etc/wellknownd/tls/fullchain.pem --reloadcmd "systemctl reload wellknownd"`)
		m.Sh(t, waitFor("test \"$("+fingerprint+")\" = '"+strings.TrimSpace(second)+"'", 30))
		if again := m.Sh(t, "systemctl show -p MainPID --value wellknownd"); again != pid {
			t.Fatalf("the renewal restarted the daemon: pid %s → %s", pid, again)
		}
		if mode := m.Sh(t, "stat -c '%a %U:%G' /etc/wellknownd/tls/key.pem"); mode != "640 root:wellknownd-tls\n" {
			t.Fatalf("key after renewal: %s", mode)
		}

		// DNS credentials: a root-only file is out of the dynamic user's
		// reach, so start-up fails naming it; the README's group drop-in
		// lets the daemon read it, and no one else.
		m.Sh(t, "printf 'DO_AUTH_TOKEN=dop_v1_test\\n' > /etc/wellknownd/dns.env && chmod 600 /etc/wellknownd/dns.env")
		m.Sh(t, `sed -i 's|^tls: .*$|tls: {mode: acme, agree: true, challenges: [dns-01], dns: {provider: digitalocean, credentials_file: /etc/wellknownd/dns.env}}|' /etc/wellknownd/wellknownd.yaml`)
		if out, err := m.Try("systemctl restart wellknownd"); err == nil {
			t.Fatalf("started with a credentials file its user cannot read:\n%s", out)
		}
		if journal := m.Sh(t, "journalctl -u wellknownd --no-pager -n 30"); !strings.Contains(journal, "tls.dns.credentials_file: /etc/wellknownd/dns.env: permission denied") {
			t.Fatalf("the failed start does not say why:\n%s", journal)
		}
		m.Sh(t, docBlock(t, "dns-credentials"))
		if got := m.Sh(t, "systemctl is-active wellknownd; stat -c '%a %U:%G' /etc/wellknownd/dns.env"); got != "active\n640 root:wellknownd-dns\n" {
			t.Fatalf("with the group drop-in: %q", got)
		}

		m.Sh(t, "systemctl stop wellknownd")
		if out, err := m.Try("pgrep -a wellknownd"); err == nil {
			t.Fatalf("processes left after stop:\n%s", out)
		}
		m.Sh(t, "systemctl disable wellknownd && rm -r /etc/systemd/system/wellknownd.service /etc/systemd/system/wellknownd.service.d && systemctl daemon-reload")
	})

	for _, c := range []struct{ name, dir, user string }{
		{"init default dir", "", ""}, // /var/lib/wellknownd, a dynamic user
		{"init /srv/matrix", "/srv/matrix", "wellknownd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, flags := c.dir, ""
			if dir == "" {
				dir = "/var/lib/wellknownd"
				m.Sh(t, "rm -rf /var/lib/wellknownd /var/lib/private/wellknownd")
			} else {
				flags = " -dir " + dir
			}
			out := m.Sh(t, "cd /root && wellknownd init -server-name example.com -delegate matrix.example.com -dendrite-bin /usr/local/bin/dendrite"+flags)
			m.Sh(t, internalTLS+dir+"/wellknownd.yaml && wellknownd validate -config "+dir+"/wellknownd.yaml")
			m.Sh(t, printedSteps(t, out, "To run it under systemd, as root:"))
			m.Sh(t, waitFor("curl -fsS http://127.0.0.1:9090/readyz >/dev/null", 1200))
			root := dir + "/tls/internal-ca/root.crt"
			if got := m.Sh(t, curlTLS(root, "example.com", "/.well-known/matrix/client")); got != `{"m.homeserver":{"base_url":"https://matrix.example.com"}}` {
				t.Fatalf("client document: %q", got)
			}
			if got := m.Sh(t, curlTLS(root, "matrix.example.com", "/_matrix/client/versions")); !strings.Contains(got, `"versions"`) {
				t.Fatalf("client API through the edge: %q", got)
			}
			// The first account, as the README says, then a login through the edge.
			m.Sh(t, "printf 'a long password\\n' > /root/pw && wellknownd register -config "+dir+"/wellknownd.yaml -user alice -admin -password-file /root/pw")
			login := m.Sh(t, curlTLS(root, "matrix.example.com", "/_matrix/client/v3/login")+
				` -H 'Content-Type: application/json' -d '{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"a long password"}'`)
			if !strings.Contains(login, `"user_id":"@alice:example.com"`) {
				t.Fatalf("login through the edge: %s", login)
			}
			// Both the daemon and Dendrite run as the service user.
			users := strings.Fields(m.Sh(t, "ps -o user= -C wellknownd,dendrite"))
			if len(users) != 2 || users[0] != users[1] || users[0] == "root" || (c.user != "" && users[0] != c.user) {
				t.Fatalf("process users %v, want two of %q", users, c.user)
			}
			m.Sh(t, "systemctl stop wellknownd")
			if out, err := m.Try("pgrep -a 'wellknownd|dendrite'"); err == nil {
				t.Fatalf("processes left after stop:\n%s", out)
			}
			m.Sh(t, "systemctl disable wellknownd && rm /etc/systemd/system/wellknownd.service && systemctl daemon-reload")
		})
	}
	t.Logf("systemd deployment test took %v", time.Since(start).Round(time.Second))
}

// TestAdoptHostFilesUnderSystemd: adopt on a host whose certificate is
// acme.sh's, a 0600 root key under /root (hidden from the unit by
// ProtectHome), run as the README and adopt's output say: the steps it
// prints under "First, as root:" for the key and "Then start it:" start a
// unit that reads the key and serves the certificate; a renewal written
// in place keeps the key readable.
func TestAdoptHostFilesUnderSystemd(t *testing.T) {
	t.Parallel()
	bin := deploytest.Build(t, t.TempDir())
	m := deploytest.BootSystemd(t)
	m.Copy(bin, "/usr/local/bin/wellknownd")
	m.Sh(t, `mkdir -p /root/dendrite/config && cd /root/dendrite/config && printf 'version: 2\nglobal:\n  server_name: example.com\n  private_key: matrix_key.pem\n' > dendrite.yaml
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.crt -days 30 \
  -subj /CN=matrix.example.com -addext subjectAltName=DNS:example.com,DNS:matrix.example.com 2>/dev/null
chmod 600 server.key`)
	out := m.Sh(t, "cd /root/dendrite && wellknownd adopt -dendrite-config config/dendrite.yaml -delegate matrix.example.com "+
		"-tls files -cert-file config/server.crt -key-file config/server.key -upstream http://127.0.0.1:8008 -resolve example.com:443:127.0.0.1:1")
	var keySteps []string
	for _, s := range strings.Split(printedSteps(t, out, "First, as root:"), "\n") {
		if !strings.HasPrefix(s, "restart Dendrite") { // a step for a person: Dendrite does not run here
			keySteps = append(keySteps, s)
		}
	}
	if want := "groupadd -f --system wellknownd-tls\nchgrp wellknownd-tls /root/dendrite/config/server.key && chmod 640 /root/dendrite/config/server.key"; strings.Join(keySteps, "\n") != want {
		t.Fatalf("adopt printed the key steps\n%s\nwant\n%s\n%s", strings.Join(keySteps, "\n"), want, out)
	}
	m.Sh(t, strings.Join(keySteps, "\n"))
	m.Sh(t, printedSteps(t, out, "Then start it:"))
	fingerprint := "openssl s_client -connect 127.0.0.1:443 -servername matrix.example.com </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
	want := m.Sh(t, "openssl x509 -noout -fingerprint -sha256 -in /root/dendrite/config/server.crt")
	m.Sh(t, waitFor("test \"$("+fingerprint+")\" = '"+strings.TrimSpace(want)+"'", 300))
	if got := m.Sh(t, "systemctl is-active wellknownd; systemctl show -p DynamicUser --value wellknownd"); got != "active\nyes\n" {
		t.Fatalf("the unit: %q", got)
	}
	// acme.sh's renewal: the new pair written into the same files, then
	// the reload; the key keeps its group and mode.
	m.Sh(t, `cd /root/dendrite/config && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /tmp/k.pem -out /tmp/c.pem -days 30 \
  -subj /CN=matrix.example.com -addext subjectAltName=DNS:example.com,DNS:matrix.example.com 2>/dev/null
cat /tmp/k.pem > server.key && cat /tmp/c.pem > server.crt && systemctl reload wellknownd`)
	renewed := m.Sh(t, "openssl x509 -noout -fingerprint -sha256 -in /root/dendrite/config/server.crt")
	m.Sh(t, waitFor("test \"$("+fingerprint+")\" = '"+strings.TrimSpace(renewed)+"'", 100))
	if mode := m.Sh(t, "stat -c '%a %U:%G' /root/dendrite/config/server.key"); mode != "640 root:wellknownd-tls\n" {
		t.Fatalf("the key after the renewal: %s", mode)
	}
}
