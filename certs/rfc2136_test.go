package certs

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/testing/knottest"
)

// TestRFC2136Zone: with tls.dns.rfc2136.zone the update goes to that zone,
// found on a label boundary; a name outside it is an error naming both,
// and nothing is sent. lego's tuning variables still apply.
func TestRFC2136Zone(t *testing.T) {
	knot := knottest.Start(t, "example.test")
	t.Setenv("RFC2136_TTL", "60")
	key, err := config.ReadTSIGKey(knot.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p, err := newRFC2136Provider(config.RFC2136{Server: knot.Addr, Zone: "example.test"}, key)
	if err != nil {
		t.Fatal(err)
	}
	if p.ttl != 60 || p.spacer != time.Minute {
		t.Errorf("ttl %d, sequence interval %s: want RFC2136_TTL's 60 and lego's default 1m0s", p.ttl, p.spacer)
	}
	if err := p.Present(ctx, "matrix.example.test", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	if got := knot.TXT(t, "_acme-challenge.matrix.example.test"); !slices.Equal(got, []string{txtValue("tok.thumb")}) {
		t.Fatalf("Knot has %v", got)
	}
	if err := p.CleanUp(ctx, "matrix.example.test", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	if got := knot.TXT(t, "_acme-challenge.matrix.example.test"); len(got) != 0 {
		t.Fatalf("after CleanUp Knot has %v", got)
	}

	// "ample.test" is a suffix of example.test's names, but not a zone
	// above them.
	p, err = newRFC2136Provider(config.RFC2136{Server: knot.Addr, Zone: "ample.test"}, key)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Present(ctx, "matrix.example.test", "tok", "tok.thumb")
	if err == nil || !strings.Contains(err.Error(), "_acme-challenge.matrix.example.test. is not in tls.dns.rfc2136.zone ample.test") {
		t.Fatalf("a name outside the zone: %v", err)
	}
}
