// Package prometheus holds the alert rules an operator loads into
// Prometheus; this test runs their unit tests with promtool.
package prometheus

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAlertRules: the rules parse, and each alert fires when its
// condition has held for its time and not before (wellknownd-alerts_test.yml).
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed (./test installs it: the Debian package prometheus)")
	}
	out, err := exec.Command(promtool, "test", "rules", "wellknownd-alerts_test.yml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
