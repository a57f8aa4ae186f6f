package server

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression of answers: zstd or gzip, by the client's Accept-Encoding,
// for JSON and text (the client API's /sync answers are large and compress
// tenfold). The decision waits for the response's headers and first bytes:
// media, ranges, answers already encoded and bodies under the minimum
// length go out as they are. A compressed stream is flushed whenever the
// proxy flushes, so a long-poll that answers late is not held back.

const (
	encZstd = "zstd"
	encGzip = "gzip"
)

// negotiateEncoding picks zstd or gzip from an Accept-Encoding header by
// its quality values (RFC 9110 §12.5.3), zstd on a tie; "" for neither.
func negotiateEncoding(header string) string {
	if header == "" {
		return ""
	}
	qZstd, qGzip, qAny := -1.0, -1.0, -1.0
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0 // a malformed weight is not a yes
				}
				q = f
			}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case encZstd:
			qZstd = q
		case encGzip, "x-gzip":
			qGzip = q
		case "*":
			qAny = q
		}
	}
	// "*" stands for what was not named; it is taken for gzip alone, which
	// every client that says it can decode.
	if qGzip < 0 {
		qGzip = qAny
	}
	switch {
	case qZstd > 0 && qZstd >= qGzip:
		return encZstd
	case qGzip > 0:
		return encGzip
	}
	return ""
}

// compressible says whether a Content-Type is worth compressing: JSON,
// text, JavaScript, XML and SVG; not media, archives or event streams.
func compressible(contentType string) bool {
	t, _, _ := strings.Cut(contentType, ";")
	t = strings.ToLower(strings.TrimSpace(t))
	switch {
	case t == "text/event-stream":
		return false
	case strings.HasPrefix(t, "text/"):
		return true
	case t == "application/json", strings.HasSuffix(t, "+json"), t == "application/javascript",
		t == "application/xml", strings.HasSuffix(t, "+xml"), t == "image/svg+xml":
		return true
	}
	return false
}

// isMediaPath is a path of the media repository: its downloads are the
// users' files, already compressed or opaque, and served with ranges.
func isMediaPath(p string) bool {
	return strings.HasPrefix(p, "/_matrix/media/") || strings.HasPrefix(p, "/_matrix/client/v1/media/") ||
		strings.HasPrefix(p, "/_matrix/federation/v1/media/")
}

// Encoders are reused: a zstd encoder costs far more to make than to reset.
// The window bounds each one's memory; JSON repeats itself within it.
var (
	zstdEncoders = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		return e
	}}
	gzipEncoders = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return w
	}}
)

// encoder is what both compressors offer.
type encoder interface {
	io.WriteCloser
	Flush() error
}

// compressWriter compresses one response when, once its headers and
// enough of its body are known, it is worth it.
type compressWriter struct {
	http.ResponseWriter
	encoding string
	minLen   int
	// ifNoneMatch is the request's If-None-Match as the client sent it,
	// before stripEncodingTags: a 304 names the tag the client holds.
	ifNoneMatch string

	state   compressState
	code    int
	pending []byte
	enc     encoder
}

type compressState int

const (
	undecided compressState = iota
	passthrough
	compressing
)

func newCompressWriter(w http.ResponseWriter, encoding string, minLen int, ifNoneMatch string) *compressWriter {
	return &compressWriter{ResponseWriter: w, encoding: encoding, minLen: minLen, ifNoneMatch: ifNoneMatch}
}

func (c *compressWriter) WriteHeader(code int) {
	if c.code != 0 || c.state != undecided {
		return
	}
	if code < 200 {
		// 100 Continue and 103 Early Hints come before the real answer.
		c.ResponseWriter.WriteHeader(code)
		return
	}
	h := c.Header()
	if code == http.StatusNotModified && c.ifNoneMatch != "" {
		restoreEncodingTag(h, c.ifNoneMatch)
	}
	// no-transform forbids an intermediary to change the content's coding
	// (RFC 9110, section 7.7).
	eligible := code != http.StatusNoContent && code != http.StatusNotModified && code != http.StatusPartialContent &&
		h.Get("Content-Encoding") == "" && h.Get("Content-Range") == "" && compressible(h.Get("Content-Type")) &&
		!hasDirective(h.Get("Cache-Control"), "no-transform")
	if eligible {
		// Whether compressed or not, the answer depended on the request's
		// Accept-Encoding: caches must know.
		addVary(h, "Accept-Encoding")
	}
	c.code = code
	switch n, err := strconv.Atoi(h.Get("Content-Length")); {
	case !eligible:
		c.passThrough()
	case err == nil && n < c.minLen:
		c.passThrough()
	case err == nil:
		c.startCompressing()
	}
	// Otherwise the length is unknown (a stream): the first bytes decide.
}

func (c *compressWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	switch c.state {
	case passthrough:
		return c.ResponseWriter.Write(p)
	case compressing:
		return c.enc.Write(p)
	}
	if len(c.pending) == 0 && len(p) >= c.minLen {
		// The usual case for a large answer: no copy.
		c.startCompressing()
		return c.enc.Write(p)
	}
	c.pending = append(c.pending, p...)
	if len(c.pending) >= c.minLen {
		c.startCompressing()
		if err := c.writePending(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// passThrough sends the headers as they are and what was held back.
func (c *compressWriter) passThrough() {
	c.state = passthrough
	c.ResponseWriter.WriteHeader(c.code)
}

func (c *compressWriter) startCompressing() {
	c.state = compressing
	h := c.Header()
	h.Del("Content-Length")
	h.Del("Accept-Ranges")
	h.Set("Content-Encoding", c.encoding)
	if et := h.Get("ETag"); et != "" {
		// Another representation, another tag: "abc" becomes "abc-zstd".
		if i := strings.LastIndexByte(et, '"'); i > 0 {
			h.Set("ETag", et[:i]+"-"+c.encoding+et[i:])
		}
	}
	c.ResponseWriter.WriteHeader(c.code)
	if c.encoding == encZstd {
		e := zstdEncoders.Get().(*zstd.Encoder)
		e.Reset(c.ResponseWriter)
		c.enc = e
	} else {
		g := gzipEncoders.Get().(*gzip.Writer)
		g.Reset(c.ResponseWriter)
		c.enc = g
	}
}

func (c *compressWriter) writePending() error {
	var err error
	switch c.state {
	case compressing:
		_, err = c.enc.Write(c.pending)
	case passthrough:
		_, err = c.ResponseWriter.Write(c.pending)
	}
	c.pending = nil
	return err
}

// FlushError sends what is compressed so far; http.ResponseController and
// the proxy's flushes of a stream come here. A stream of unknown length
// that is flushed before it reached the minimum length is compressed all
// the same: its length cannot be known, and the proxy flushes after every
// read from the upstream, whose first may be a short one.
func (c *compressWriter) FlushError() error {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if c.state == undecided {
		c.startCompressing()
		if err := c.writePending(); err != nil {
			return err
		}
	}
	if c.state == compressing {
		if err := c.enc.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(c.ResponseWriter).Flush()
}

func (c *compressWriter) Flush() { c.FlushError() }

// Unwrap lets http.ResponseController reach the connection.
func (c *compressWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Close ends the response: a short body goes out as it is, with its
// length; a compressed one gets its end, and the encoder goes back.
func (c *compressWriter) Close() error {
	switch c.state {
	case undecided:
		if c.code == 0 {
			return nil // nothing was written: the handler's business
		}
		c.Header().Set("Content-Length", strconv.Itoa(len(c.pending)))
		c.passThrough()
		return c.writePending()
	case compressing:
		err := c.enc.Close()
		switch e := c.enc.(type) {
		case *zstd.Encoder:
			e.Reset(nil)
			zstdEncoders.Put(e)
		case *gzip.Writer:
			e.Reset(nil)
			gzipEncoders.Put(e)
		}
		c.enc = nil
		return err
	}
	return nil
}

// addVary adds a field name to Vary unless it is there.
func addVary(h http.Header, name string) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, name) {
				return
			}
		}
	}
	h.Add("Vary", name)
}

// stripEncodingTags removes the suffix startCompressing gave an ETag from
// the request's conditional headers, so that the upstream recognises its
// own tags when the client sends back a compressed answer's.
func stripEncodingTags(h http.Header) {
	for _, k := range []string{"If-None-Match", "If-Match"} {
		v := h.Get(k)
		if v == "" {
			continue
		}
		r := strings.NewReplacer("-"+encZstd+`"`, `"`, "-"+encGzip+`"`, `"`)
		h.Set(k, r.Replace(v))
	}
}

// restoreEncodingTag gives a 304 the tag the client revalidated: the
// upstream confirmed "abc" (its own tag, once stripEncodingTags took the
// suffix off), but the client holds the compressed answer as "abc-zstd",
// and a 304 must name the representation the client has (RFC 9110, section
// 15.4.5).
func restoreEncodingTag(h http.Header, ifNoneMatch string) {
	et := h.Get("ETag")
	i := strings.LastIndexByte(et, '"')
	if i <= 0 || strings.Contains(ifNoneMatch, et) {
		return
	}
	for _, enc := range []string{encZstd, encGzip} {
		if tagged := et[:i] + "-" + enc + et[i:]; strings.Contains(ifNoneMatch, tagged) {
			h.Set("ETag", tagged)
			return
		}
	}
}

// hasDirective reports whether a Cache-Control value holds directive.
func hasDirective(cacheControl, directive string) bool {
	if cacheControl == "" {
		return false
	}
	for d := range strings.SplitSeq(cacheControl, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(d), "=")
		if strings.EqualFold(name, directive) {
			return true
		}
	}
	return false
}
