package server

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wellknownd/wellknownd/delegation"
)

// wellKnownPrefix is where the discovery documents live.
const wellKnownPrefix = "/.well-known/matrix/"

// chunkingThreshold is below net/http's bufferBeforeChunkingSize (2048).
const chunkingThreshold = 2000

// document is a rendered discovery document with its response headers
// prepared, so that serving it is a few map assignments and one write.
type document struct {
	body          []byte
	etag          []string
	contentLength []string
}

// wellKnown serves /.well-known/matrix/{server,client,support}.
type wellKnown struct {
	server, client, support *document // support is nil when not configured
	cacheControl            []string
}

func newWellKnown(docs delegation.Documents, maxAge time.Duration) *wellKnown {
	wk := &wellKnown{
		server:       newDocument(docs.Server),
		client:       newDocument(docs.Client),
		cacheControl: []string{"public, max-age=" + strconv.Itoa(int(maxAge.Seconds()))},
	}
	if docs.Support.Body != nil {
		wk.support = newDocument(docs.Support)
	}
	return wk
}

func newDocument(d delegation.Document) *document {
	return &document{body: d.Body, etag: []string{d.ETag}, contentLength: []string{strconv.Itoa(len(d.Body))}}
}

// serve answers a request whose path starts with wellKnownPrefix. Every
// answer carries CORS headers, whatever its status: web clients such as
// Element read these documents cross-origin, and a 404 or 405 without CORS
// reaches their code as an opaque network error.
func (wk *wellKnown) serve(w http.ResponseWriter, r *http.Request, cors corsMethods) {
	h := w.Header()
	if r.Method == http.MethodOptions {
		// A preflight needs a 2xx answer whatever the path, or the browser
		// reports a CORS failure instead of the real answer that follows.
		setCORS(h, cors)
		h["Allow"] = corsReadOnly
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var d *document
	switch r.URL.Path[len(wellKnownPrefix):] {
	case "server":
		d = wk.server
	case "client":
		d = wk.client
	case "support":
		d = wk.support
	}
	if d == nil {
		writeMatrixError(w, cors, http.StatusNotFound, codeNotFound, "No such document")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h["Allow"] = corsReadOnly
		writeMatrixError(w, cors, http.StatusMethodNotAllowed, codeUnrecognized, "Method not allowed")
		return
	}
	setCORS(h, cors)
	h["Cache-Control"] = wk.cacheControl
	h["Etag"] = d.etag
	if inm := r.Header["If-None-Match"]; inm != nil && etagMatches(inm, d.etag[0]) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = headerJSON
	if r.Method == http.MethodHead || len(d.body) >= chunkingThreshold {
		// net/http computes Content-Length itself, without a header map
		// entry, for a GET whose body fits its 2 KiB buffer: that is the
		// common case and the hot path. A HEAD has no body to measure, and a
		// larger document would otherwise go out chunked.
		h["Content-Length"] = d.contentLength
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(d.body)
	}
}

// etagMatches implements If-None-Match's weak comparison (RFC 9110 13.1.2):
// "*" matches, and W/"x" matches "x".
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
