package confref_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wellknownd/wellknownd/internal/confref"
)

// copyConfig copies the config package's Go files to a directory of the
// test's, after edit has changed config.go's text.
func copyConfig(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("../../config/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no config sources: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if filepath.Base(f) == "config.go" {
			s = edit(s)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestReferenceFollowsTheSource: what the reference says of a key is the
// field's comment, its type and its default, and a field without a comment
// stops the generator instead of leaving a bare name in the reference.
func TestReferenceFollowsTheSource(t *testing.T) {
	out, err := confref.Generate("../../config")
	if err != nil {
		t.Fatal(err)
	}
	ref := string(out)
	for _, want := range []string{
		"### `upstream.max_body`\n\nsize · default `100MiB`\n\n`max_body` caps a request body",
		"### `delegation.max_age`\n\nduration · default `4h`",
		"### `limits.upstream_wait`\n\nduration · default `10s`",
		"### `log.format`\n\nstring · default `text`",
		"### `tls.challenges`\n\nlist of strings · default `[http-01, tls-alpn-01]`",
		"### `listen.http3`\n\nboolean · default `true`",
		// A sibling's Go name in a comment is written as its key.
		"unless `federation_url` is set",
		// List entries have no default of their own.
		"### `supervise[].stop_timeout`\n\nduration\n\n",
		// The shared comment of CertFile and KeyFile speaks for both.
		"### `tls.key_file`\n\nstring · default `\"\"`\n\n`cert_file` and `key_file` are the PEM chain",
		// dns.go's fields are there too.
		"### `tls.dns.rfc2136.tsig_key_file`",
	} {
		if !strings.Contains(ref, want) {
			t.Errorf("the reference lacks\n%s", want)
		}
	}
	for _, hidden := range []string{"`upstream.target`", "Target", "StorageKind", "`name`\n"} {
		if strings.Contains(ref, hidden) {
			t.Errorf("the reference shows %q, which no file sets (yaml:\"-\")", hidden)
		}
	}

	changed := copyConfig(t, func(s string) string {
		return strings.Replace(s, "// requests (long-polls included) before it closes them.", "// requests (long-polls included) before it closes them. Changed here.", 1)
	})
	out, err = confref.Generate(changed)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "before it closes them. Changed here.") {
		t.Error("a changed field comment did not reach the reference")
	}

	bare := copyConfig(t, func(s string) string {
		return strings.Replace(s, "\t// Log configures the daemon's log on standard error. The -log-format\n\t// and -log-level flags, when given, win.\n", "", 1)
	})
	if _, err := confref.Generate(bare); err == nil || !strings.Contains(err.Error(), "log") {
		t.Errorf("a key without a comment: err = %v, want one naming log", err)
	}
}
