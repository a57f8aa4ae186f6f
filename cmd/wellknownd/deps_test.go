package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBadDeps keeps out of the default build what would cost every process
// and serve none of its requests: each package named here was taken out once,
// for the reason it names (docs/benchmarks.md), and an innocent-looking
// import brings it back.
func TestBadDeps(t *testing.T) {
	bad := map[string]string{
		// Its executor calls reflect.Value.MethodByName, after which the
		// linker keeps every exported method of every type: 4 MB of
		// binary, 1.6 MB resident. deploy writes its files in Go instead.
		"text/template": "the linker keeps every method once it is linked",
		"html/template": "the linker keeps every method once it is linked",
		// The AWS SDK's packages initialise in every process, dns-01 or
		// not (5.5 MB resident): only -tags route53 links it.
		"github.com/aws": "route53 is behind its build tag",
		// lego's RFC 2136 provider brought GSS-TSIG and Kerberos;
		// certs/rfc2136.go speaks RFC 2136 itself.
		"github.com/go-acme/lego/v5/providers/dns/rfc2136": "certs/rfc2136.go replaces it",
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps listed %d packages; the binary has hundreds", len(deps))
	}
	for _, d := range deps {
		for b, why := range bad {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("wellknownd links %s: %s", d, why)
			}
		}
	}
}
