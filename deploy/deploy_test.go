package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// unitForCheck writes the shipped unit with ExecStart pointing at a program
// that exists here, which systemd-analyze verify requires.
func unitForCheck(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(Unit()), "/usr/local/bin/wellknownd", self)
	path := filepath.Join(t.TempDir(), "wellknownd.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnitVerifies(t *testing.T) {
	out, err := exec.Command("systemd-analyze", "verify", unitForCheck(t)).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestUnitSecurityRating(t *testing.T) {
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", unitForCheck(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\w+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no rating in:\n%s", out)
	}
	if m[2] != "OK" && m[2] != "SAFE" {
		t.Fatalf("exposure %s %s, want OK or better", m[1], m[2])
	}
	t.Logf("systemd-analyze security: %s %s", m[1], m[2])
}

func TestGenerateIsConsistent(t *testing.T) {
	d, err := Generate(Options{ServerName: "example.com", Delegate: "matrix.example.com", Dir: "/srv/matrix", Email: "a@example.com", DendriteBin: "/usr/bin/dendrite", WellknowndBin: "/usr/local/bin/wellknownd", Source: "/src/wellknownd"})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]string{}
	modes := map[string]os.FileMode{}
	for _, f := range d.Files {
		byPath[f.Path] = string(f.Data)
		modes[f.Path] = f.Mode
	}
	secret := regexp.MustCompile(`registration_shared_secret: "([^"]+)"`)
	a, b := secret.FindStringSubmatch(byPath["dendrite/dendrite.yaml"]), secret.FindStringSubmatch(byPath["compose/dendrite.yaml"])
	if a == nil || b == nil || a[1] != b[1] || len(a[1]) < 40 {
		t.Fatalf("registration secrets: %v %v", a, b)
	}
	pw := strings.TrimSpace(byPath["compose/postgres_password.secret"])
	if pw == "" || !strings.Contains(byPath["compose/dendrite.yaml"], "postgres://dendrite:"+pw+"@postgres:5432/dendrite") {
		t.Fatal("the compose Dendrite does not use the password the postgres image is given")
	}
	for _, want := range []string{`server_name: "example.com"`, `well_known_server_name: "matrix.example.com:443"`, `well_known_client_name: "https://matrix.example.com"`, "max_file_size_bytes: 104857600"} {
		if !strings.Contains(byPath["dendrite/dendrite.yaml"], want) {
			t.Errorf("dendrite.yaml lacks %s", want)
		}
	}
	if !strings.Contains(byPath["wellknownd.service"], "ExecStart=/usr/local/bin/wellknownd serve -config /srv/matrix/wellknownd.yaml") {
		t.Errorf("unit ExecStart not pointed at the generated config")
	}
	// Who reads what: wellknownd's configs hold no secret and must be
	// readable by the service's user (65532 in the image); Dendrite's
	// and the key are for Dendrite alone.
	for path, want := range map[string]os.FileMode{
		"wellknownd.yaml": 0o644, "compose/wellknownd.yaml": 0o644, "dendrite/dendrite.yaml": 0o600,
		"compose/dendrite.yaml": 0o600, "dendrite/matrix_key.pem": 0o600, "compose/postgres_password.secret": 0o600,
	} {
		if modes[path] != want {
			t.Errorf("%s mode %v, want %v", path, modes[path], want)
		}
	}
	for _, p := range []string{"wellknownd.yaml", "compose/wellknownd.yaml"} {
		for _, leak := range []string{a[1], pw} {
			if strings.Contains(byPath[p], leak) {
				t.Errorf("%s holds a secret, but is readable by all", p)
			}
		}
	}
	if byPath["compose/.env"] != "# The clone of wellknownd that docker compose builds the image from.\nWELLKNOWND_SRC=/src/wellknownd\n" {
		t.Errorf("compose/.env: %q", byPath["compose/.env"])
	}
	if !strings.Contains(byPath["compose/wellknownd.yaml"], `metrics: ":9100"`) || strings.Contains(byPath["wellknownd.yaml"], "metrics:") {
		t.Error("the metrics listener belongs to the compose config alone")
	}
}

// TestUnitForDir: the generated unit works wherever the deployment lives,
// as far as the unit file can say; the systemd deployment test runs it.
func TestUnitForDir(t *testing.T) {
	gen := func(dir string, postgres bool) (SystemdSetup, error) {
		return unitFor(Options{WellknowndBin: "/usr/local/bin/wellknownd", Postgres: postgres}, dir, dir+"/wellknownd.yaml")
	}
	s, err := gen("/var/lib/matrix", false)
	if err != nil {
		t.Fatal(err)
	}
	u := string(s.Unit)
	for _, want := range []string{"DynamicUser=yes\n", "StateDirectory=matrix\n", "ExecStart=/usr/local/bin/wellknownd serve -config /var/lib/matrix/wellknownd.yaml\n"} {
		if !strings.Contains(u, want) {
			t.Errorf("/var/lib/matrix: unit lacks %q", want)
		}
	}
	if strings.Contains(u, "ConfigurationDirectory=") || strings.Contains(u, "User=wellknownd") || len(s.Steps) != 2 {
		t.Errorf("/var/lib/matrix: unit or steps wrong:\n%s\n%v", u, s.Steps)
	}

	s, err = gen("/srv/matrix", true)
	if err != nil {
		t.Fatal(err)
	}
	u = string(s.Unit)
	for _, want := range []string{"User=wellknownd\n", "Group=wellknownd\n", "ReadWritePaths=/srv/matrix\n", "ProtectHome=yes\n",
		"After=network-online.target postgresql.service\n", "Wants=network-online.target postgresql.service\n"} {
		if !strings.Contains(u, want) {
			t.Errorf("/srv/matrix: unit lacks %q", want)
		}
	}
	for _, not := range []string{"DynamicUser=", "StateDirectory="} {
		if strings.Contains(u, not) {
			t.Errorf("/srv/matrix: unit still has %s", not)
		}
	}
	if !strings.HasPrefix(s.Steps[0], "useradd --system") || s.Steps[1] != "chown -R wellknownd:wellknownd /srv/matrix" {
		t.Errorf("/srv/matrix steps: %v", s.Steps)
	}

	s, _ = gen("/home/alice/matrix", false)
	if u := string(s.Unit); !strings.Contains(u, "ProtectHome=tmpfs\nBindPaths=/home/alice/matrix\n") {
		t.Errorf("/home: the directory is not bound into the service's /home:\n%s", u)
	}
	s, _ = gen("/tmp/x", false)
	if !strings.Contains(string(s.Unit), "PrivateTmp=no\n") || len(s.Warnings) != 1 {
		t.Errorf("/tmp: PrivateTmp or warning missing: %v", s.Warnings)
	}
	for _, bad := range []string{"/var/lib/a/b", "/var/lib", "/", "/root", "/srv", "/home/alice"} {
		if _, err := gen(bad, false); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
	// Each generated unit still verifies.
	for _, dir := range []string{"/var/lib/matrix", "/srv/matrix", "/home/alice/matrix"} {
		s, _ := gen(dir, false)
		self, _ := os.Executable()
		path := filepath.Join(t.TempDir(), "wellknownd.service")
		os.WriteFile(path, []byte(strings.ReplaceAll(string(s.Unit), "/usr/local/bin/wellknownd", self)), 0o644)
		if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("%s: systemd-analyze verify: %v\n%s", dir, err, out)
		}
	}
}
