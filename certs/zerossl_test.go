package certs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/wellknownd/wellknownd/config"
)

// TestZeroSSLValidationAnsweredOnHTTP: with ZeroSSL configured (as the CA,
// or as Let's Encrypt's fallback), the HTTP listener answers ZeroSSL's file
// validation from what the issuer left in storage, instead of passing it on
// to the redirect to https; every other request still goes on.
func TestZeroSSLValidationAnsweredOnHTTP(t *testing.T) {
	for _, ca := range []string{"zerossl", "letsencrypt"} {
		t.Run(ca, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "zerossl.key")
			os.WriteFile(keyFile, []byte("api-key\n"), 0o600)
			src, err := New(Options{
				TLS: config.TLS{Mode: config.TLSACME, Email: "a@example.com", CA: ca, ZeroSSLAPIKeyFile: keyFile,
					Storage: filepath.Join(dir, "storage"), Challenges: []string{"http-01"}},
				Hosts: []string{"example.com"}, HTTPAddr: "127.0.0.1:8080",
				Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			m := src.(*managed)
			if m.zerossl == nil || m.zerossl.AltHTTPPort != 8080 || m.zerossl.ListenHost != "127.0.0.1" {
				t.Fatalf("ZeroSSL issuer %+v: want it told the HTTP listener's address", m.zerossl)
			}
			// What ZeroSSLIssuer.Issue stores while a validation runs: the
			// file's URL and content, under the issuer's key and the name.
			rec, _ := json.Marshal(acme.Challenge{
				URL:   "http://example.com/.well-known/pki-validation/0123ABCD.txt",
				Token: "a3f1\ncomodoca.com\n5f0e",
			})
			if err := m.magic.Storage.Store(context.Background(), "zerossl/challenge_tokens/example.com.json", rec); err != nil {
				t.Fatal(err)
			}
			h := src.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
			}))
			for _, tc := range []struct {
				path string
				code int
				body string
			}{
				{"/.well-known/pki-validation/0123ABCD.txt", 200, "a3f1\ncomodoca.com\n5f0e"},
				{"/.well-known/pki-validation/other.txt", 404, ""},
				{"/_matrix/client/versions", 308, ""},
			} {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com"+tc.path, nil))
				if w.Code != tc.code || (tc.body != "" && w.Body.String() != tc.body) {
					t.Errorf("GET %s: %d %q, want %d %q", tc.path, w.Code, w.Body, tc.code, tc.body)
				}
			}
		})
	}
}
