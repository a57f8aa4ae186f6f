package deploy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/delegation"
	"github.com/wellknownd/wellknownd/fedcheck"
)

// guideDendrite is dendrite.yaml as the guides of 2023 had it: both
// well-known settings the server name itself.
var guideDendrite = strings.NewReplacer(`well_known_server_name: ""`, `well_known_server_name: "example.com"`,
	`well_known_client_name: ""`, `well_known_client_name: "https://example.com"`).Replace(minimalDendrite)

// published is a Fetch that answers what a Worker serves for example.com;
// a body of "" is a fetch that failed.
func published(server, client string) func(delegation.ServerName) (fedcheck.Published, fedcheck.Published) {
	doc := func(name, body string) fedcheck.Published {
		p := fedcheck.Published{URL: "https://example.com/.well-known/matrix/" + name}
		if body == "" {
			p.Problem = "fetching it failed: connection refused"
		} else {
			p.Body = []byte(body)
		}
		return p
	}
	return func(delegation.ServerName) (fedcheck.Published, fedcheck.Published) {
		return doc("server", server), doc("client", client)
	}
}

const (
	workerServer = `{"m.server":"matrix.example.com:8448"}`
	workerClient = `{"io.element.e2ee":{"default":false},"m.homeserver":{"base_url":"https://matrix.example.com:8448"},"m.identity_server":{"base_url":"https://vector.im"}}`
)

// TestAdoptKeepsPublishedDocuments: the documents served today are what
// peers and clients hold; adopt keeps them byte for byte, ports and extra
// keys included, turns on the client API on 8448 for the base_url there,
// shows them with their sources, and names dendrite.yaml's settings that
// disagree (the server name itself, as the guides told).
func TestAdoptKeepsPublishedDocuments(t *testing.T) {
	dir := existingDendrite(t, guideDendrite)
	a, err := adoptIn(dir, AdoptOptions{Fetch: published(workerServer, workerClient)})
	if err != nil {
		t.Fatal(err)
	}
	text := fileOf(t, a, "wellknownd.yaml")
	cfg, problems := config.Parse("wellknownd.yaml", []byte(text))
	if len(problems) > 0 {
		t.Fatalf("%v\n%s", problems, text)
	}
	if string(cfg.Documents.Server.Body) != workerServer || string(cfg.Documents.Client.Body) != workerClient ||
		!cfg.Listen.FederationClientAPI || strings.Join(cfg.Hosts, " ") != "example.com matrix.example.com" {
		t.Errorf("served %s and %s, federation_client_api %v, hosts %v\n%s", cfg.Documents.Server.Body, cfg.Documents.Client.Body,
			cfg.Listen.FederationClientAPI, cfg.Hosts, text)
	}
	if len(a.Documents) != 2 || a.Documents[0].Body != workerServer || a.Documents[1].Body != workerClient ||
		!strings.Contains(strings.Join(a.Documents[0].Notes, "\n"), "m.server: as https://example.com/.well-known/matrix/server serves it today") ||
		a.Documents[0].Notes[1] != "the same bytes as today" || a.Documents[1].Notes[1] != "the same bytes as today" {
		t.Errorf("the plan's documents: %+v", a.Documents)
	}
	var edits []string
	for _, e := range a.DendriteEdits {
		edits = append(edits, e.String())
	}
	for _, want := range []string{
		`config/dendrite.yaml:5: global.well_known_server_name: is "example.com", but wellknownd answers /.well-known/matrix/server with "matrix.example.com:8448" (as https://example.com/.well-known/matrix/server serves it today`,
		`config/dendrite.yaml:6: global.well_known_client_name: is "https://example.com", but wellknownd answers /.well-known/matrix/client with base_url "https://matrix.example.com:8448"`,
	} {
		if !strings.Contains(strings.Join(edits, "\n"), want) {
			t.Errorf("edits lack %q:\n%s", want, strings.Join(edits, "\n"))
		}
	}
	if !strings.Contains(strings.Join(a.Changes, "\n"), "the federation port 8448 serves the client API too") {
		t.Errorf("changes: %q", a.Changes)
	}
	if dns := strings.Join(a.DNS, "\n"); !strings.Contains(dns, "point example.com and matrix.example.com") || !strings.Contains(dns, "not 8448") {
		t.Errorf("DNS: %q", a.DNS)
	}
}

// TestAdoptDelegateWithPort: -delegate HOST:8448 keeps peers and clients
// on 8448; it overrides what is served today, and says what changes; a
// port wellknownd does not listen on is refused.
func TestAdoptDelegateWithPort(t *testing.T) {
	dir := existingDendrite(t, guideDendrite)
	a, err := adoptIn(dir, AdoptOptions{Delegate: "matrix.example.com:8448", Fetch: published("", "")})
	if err != nil {
		t.Fatal(err)
	}
	if text := fileOf(t, a, "wellknownd.yaml"); !strings.Contains(text, `server: "matrix.example.com:8448"`) ||
		!strings.Contains(text, `client_base_url: "https://matrix.example.com:8448"`) || !strings.Contains(text, "federation_client_api: true") {
		t.Errorf("with -delegate matrix.example.com:8448:\n%s", text)
	}
	a, err = adoptIn(dir, AdoptOptions{Delegate: "matrix.example.com", Fetch: published(workerServer, workerClient)})
	if err != nil {
		t.Fatal(err)
	}
	changes := strings.Join(a.Changes, "\n")
	for _, want := range []string{`m.server changes from "matrix.example.com:8448"`, `base_url changes from "https://matrix.example.com:8448" to "https://matrix.example.com"`,
		"clients that logged in with https://matrix.example.com:8448 keep syncing"} {
		if !strings.Contains(changes, want) {
			t.Errorf("changes lack %q:\n%s", want, changes)
		}
	}
	if _, err := adoptIn(dir, AdoptOptions{Delegate: "matrix.example.com:9999"}); err == nil || !strings.Contains(err.Error(), "wellknownd listens on 443 and 8448") {
		t.Errorf("-delegate on port 9999: %v", err)
	}
}

// TestAdoptRefusesWithoutAnyDelegation: nothing fetched and dendrite.yaml
// naming only the server name tell nothing: adopt refuses, says why and
// what to pass, and writes nothing.
func TestAdoptRefusesWithoutAnyDelegation(t *testing.T) {
	dir := existingDendrite(t, guideDendrite)
	before := listing(t, dir)
	_, err := adoptIn(dir, AdoptOptions{Fetch: published("", "")})
	if err == nil {
		t.Fatal("adopt derived a delegation from nothing")
	}
	for _, want := range []string{`config/dendrite.yaml:5: global.well_known_server_name: is "example.com", the server name itself`,
		"https://example.com/.well-known/matrix/server: fetching it failed: connection refused", "-delegate HOST[:PORT]", "-resolve example.com:443:ADDR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal lacks %q:\n%v", want, err)
		}
	}
	if after := listing(t, dir); after != before {
		t.Error("files changed")
	}
	// A document that clients cannot use is no delegation either.
	if _, err := adoptIn(dir, AdoptOptions{Fetch: published(`{"m.server": "https://matrix.example.com"}`, `<html>`)}); err == nil {
		t.Error("adopt kept documents nobody can use")
	}
}

// TestAdoptValidatesWhatItWrites: the configuration is checked as the
// container reads it (the mounted certificate), before anything is
// written; the header's command is one that works where the file is.
func TestAdoptValidatesWhatItWrites(t *testing.T) {
	dir := existingDendrite(t, minimalDendrite)
	a, err := adoptIn(dir, AdoptOptions{Delegate: "matrix.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if text := fileOf(t, a, "wellknownd.yaml"); !strings.Contains(text, "#   docker compose run --rm --no-deps wellknownd validate -config /etc/wellknownd/wellknownd.yaml\n") {
		t.Errorf("the header:\n%s", text)
	}
	// A client document served today whose extra key the configuration
	// refuses is adopt's error, not one the daemon finds at start.
	_, err = adoptIn(dir, AdoptOptions{Fetch: published(workerServer, `{"m.homeserver":{"base_url":"https://matrix.example.com"},"org.matrix.msc3575.proxy":"not an object"}`)})
	if err == nil || !strings.Contains(err.Error(), "does not validate, so nothing was written") {
		t.Errorf("an invalid configuration: %v", err)
	}
	if _, err := adoptIn(dir, AdoptOptions{Compose: &ComposeOptions{File: filepath.Join(dir, "docker-compose.yml")}, Delegate: "matrix.example.com"}); err != nil {
		t.Fatal(err)
	}
}
