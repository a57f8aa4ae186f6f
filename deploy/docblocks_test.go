package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/internal/testing/deploytest"
)

// docPages are where the documentation's shell blocks live: the README and
// every page under docs/.
func docPages(t *testing.T) map[string]string {
	t.Helper()
	root := deploytest.Root()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{}
	for _, f := range append(files, filepath.Join(root, "README.md")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		pages[rel] = string(b)
	}
	return pages
}

var (
	blockMarker = regexp.MustCompile("(?s)<!-- deploy-test: ([a-z0-9-]+) -->\n```\\w*\n(.*?)```")
	// markerLine is a marker as a line of its own; prose may name one.
	markerLine = regexp.MustCompile(`(?m)^<!-- deploy-test:`)
)

// docBlock is the fenced block that follows "<!-- deploy-test: name -->" in
// the README or a page under docs/: what the deployment tests run is what
// the documentation says. A name marks one block in all of them, so that a
// page moved or split keeps its blocks tested.
func docBlock(t *testing.T, name string) string {
	t.Helper()
	var found []string
	var block string
	for page, text := range docPages(t) {
		for _, m := range blockMarker.FindAllStringSubmatch(text, -1) {
			if m[1] == name {
				found = append(found, page)
				block = m[2]
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one block marked deploy-test: %s in README.md and docs/*.md, found %d (%v)", name, len(found), found)
	}
	return block
}

// TestDocBlocks runs without Docker or systemd: every block the deployment
// tests read is in the documentation once, and every block marked there is
// one a deployment test reads, so that no block looks tested and is not.
func TestDocBlocks(t *testing.T) {
	srcs, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	call := regexp.MustCompile(`docBlock\(t, "([a-z0-9-]+)"\)`)
	for _, f := range srcs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(read, m[1]) {
				read = append(read, m[1])
			}
		}
	}
	if len(read) == 0 {
		t.Fatal("no deployment test reads a documentation block")
	}
	for _, name := range read {
		if block := docBlock(t, name); strings.TrimSpace(block) == "" {
			t.Errorf("the block marked deploy-test: %s is empty", name)
		}
	}
	for page, text := range docPages(t) {
		if n := len(markerLine.FindAllString(text, -1)); n != len(blockMarker.FindAllString(text, -1)) {
			t.Errorf("%s: %d deploy-test markers, but only %d are followed by a fenced block", page, n, len(blockMarker.FindAllString(text, -1)))
		}
		for _, m := range blockMarker.FindAllStringSubmatch(text, -1) {
			if !slices.Contains(read, m[1]) {
				t.Errorf("%s marks a block deploy-test: %s, which no deployment test runs", page, m[1])
			}
		}
	}
	t.Logf("blocks run by the deployment tests: %v", read)
}
