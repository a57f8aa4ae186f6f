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
	files, err := Generate(Options{ServerName: "example.com", Delegate: "matrix.example.com", Dir: "/srv/matrix", Email: "a@example.com", DendriteBin: "/usr/bin/dendrite", WellknowndBin: "/usr/local/bin/wellknownd"})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]string{}
	for _, f := range files {
		byPath[f.Path] = string(f.Data)
	}
	secret := regexp.MustCompile(`registration_shared_secret: "([^"]+)"`)
	a, b := secret.FindStringSubmatch(byPath["dendrite/dendrite.yaml"]), secret.FindStringSubmatch(byPath["compose/dendrite.yaml"])
	if a == nil || b == nil || a[1] != b[1] || len(a[1]) < 40 {
		t.Fatalf("registration secrets: %v %v", a, b)
	}
	pw := regexp.MustCompile(`PASSWORD '([^']+)'`).FindStringSubmatch(byPath["compose/postgres-init.sql"])
	if pw == nil || !strings.Contains(byPath["compose/dendrite.yaml"], "postgres://dendrite:"+pw[1]+"@postgres:5432/dendrite") {
		t.Fatal("the compose Dendrite does not use the password the init script sets")
	}
	for _, want := range []string{`server_name: "example.com"`, `well_known_server_name: "matrix.example.com:443"`, `well_known_client_name: "https://matrix.example.com"`, "max_file_size_bytes: 104857600"} {
		if !strings.Contains(byPath["dendrite/dendrite.yaml"], want) {
			t.Errorf("dendrite.yaml lacks %s", want)
		}
	}
	if !strings.Contains(byPath["wellknownd.service"], "ExecStart=/usr/local/bin/wellknownd serve -config /srv/matrix/wellknownd.yaml") {
		t.Errorf("unit ExecStart not pointed at the generated config")
	}
}
