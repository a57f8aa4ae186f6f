package server

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAlertRulesNameExportedMetrics: every metric the alert rules in
// deploy/prometheus use is one this package exports (its name is a string
// in its code), so that renaming a metric breaks this test, not an
// operator's alerting.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	rules, err := os.ReadFile("../deploy/prometheus/wellknownd-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.go")
	var code strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	used := map[string]bool{}
	for _, line := range strings.Split(string(rules), "\n") {
		if expr, ok := strings.CutPrefix(strings.TrimSpace(line), "expr:"); ok {
			for _, m := range regexp.MustCompile(`wellknownd_[a-z_]+`).FindAllString(expr, -1) {
				used[m] = true
			}
		}
	}
	if len(used) < 5 {
		t.Fatalf("only %d metrics found in the rules: %v", len(used), used)
	}
	for m := range used {
		if !strings.Contains(code.String(), `"`+m+`"`) {
			t.Errorf("the alert rules use %s, which the server does not export", m)
		}
	}
}
