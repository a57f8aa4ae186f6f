package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"
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
	// encBr is sent only from a static route's precompressed files: the
	// edge has no Brotli encoder of its own.
	encBr = "br"
)

// negotiateEncoding picks zstd or gzip from an Accept-Encoding header by
// its quality values (RFC 9110 §12.5.3), zstd on a tie; "" for neither.
func negotiateEncoding(header string) string {
	q := acceptedCodings(header)
	switch {
	case q.zstd > 0 && q.zstd >= q.gzip:
		return encZstd
	case q.gzip > 0:
		return encGzip
	}
	return ""
}

// codingWeights are an Accept-Encoding's quality values for the codings
// the edge sends; 0 is "not acceptable".
type codingWeights struct{ zstd, br, gzip float64 }

// acceptedCodings reads an Accept-Encoding header's quality values. "*"
// stands for what was not named; it is taken for gzip alone, which every
// client that says it can decode.
func acceptedCodings(header string) codingWeights {
	if header == "" {
		return codingWeights{}
	}
	qZstd, qBr, qGzip, qAny := -1.0, -1.0, -1.0, -1.0
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
		case encBr:
			qBr = q
		case encGzip, "x-gzip":
			qGzip = q
		case "*":
			qAny = q
		}
	}
	if qGzip < 0 {
		qGzip = qAny
	}
	return codingWeights{zstd: max(qZstd, 0), br: max(qBr, 0), gzip: max(qGzip, 0)}
}

// compressible says whether a Content-Type is worth compressing: JSON,
// text, JavaScript, XML, SVG and WebAssembly (Element Web's crypto module
// is megabytes of it); not media, archives or event streams.
func compressible(contentType string) bool {
	t, _, _ := strings.Cut(contentType, ";")
	t = strings.ToLower(strings.TrimSpace(t))
	switch {
	case t == "text/event-stream":
		return false
	case strings.HasPrefix(t, "text/"):
		return true
	case t == "application/json", strings.HasSuffix(t, "+json"), t == "application/javascript",
		t == "application/xml", strings.HasSuffix(t, "+xml"), t == "image/svg+xml", t == "application/wasm":
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

// holdIdle is how long an answer keeps its encoder while it is not
// compressing: waiting for its client to take what was sent (a stalled
// stream), or for more of the answer. Then the compressed stream is ended
// there (zstd: the frame is closed; gzip: the deflate stream is flushed to
// a byte boundary) and the encoder goes back; should the answer go on, it
// carries on with another (zstd: a new frame, which decoders read as the
// continuation, RFC 8878 section 3; gzip: more deflate blocks in the same
// member). A second is far longer than an encoder waits on a client that
// reads, and it keeps a stalled stream's cost to its unsent bytes.
const holdIdle = time.Second

// compressWriter compresses one response when, once its headers and
// enough of its body are known, it is worth it and an encoder is free.
type compressWriter struct {
	http.ResponseWriter
	encoding string
	minLen   int
	// ifNoneMatch is the request's If-None-Match as the client sent it,
	// before stripEncodingTags: a 304 names the tag the client holds.
	ifNoneMatch string
	budget      *encoderBudget
	// ctx is the request's: a compressed answer waits for an encoder no
	// longer than its client.
	ctx context.Context

	state   compressState
	code    int
	pending []byte
	// declined is set by a handler that chose the representation itself
	// (a static route's precompressed or cached variants).
	declined bool

	// mu is between the handler's goroutine and the idle timer (letGo):
	// the timer takes enc away only while idle.
	mu  sync.Mutex
	enc encoder
	// out collects what enc produced; sending is the copy being written
	// to the client, so that the timer may add to out meanwhile.
	out     bytes.Buffer
	sending []byte
	idle    bool
	since   time.Time
	timer   *time.Timer
	ended   bool
	// crc and size are the gzip trailer's, over the uncompressed body.
	crc  uint32
	size uint32
}

// encoder is what both stream compressors offer.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
}

type compressState int

const (
	undecided compressState = iota
	passthrough
	compressing
)

func newCompressWriter(w http.ResponseWriter, encoding string, minLen int, ifNoneMatch string, budget *encoderBudget, ctx context.Context) *compressWriter {
	return &compressWriter{ResponseWriter: w, encoding: encoding, minLen: minLen, ifNoneMatch: ifNoneMatch, budget: budget, ctx: ctx}
}

// declineCompression tells the compressWriter under w, if any, that the
// handler chose the answer's representation itself and it must pass it on
// as it is.
func declineCompression(w http.ResponseWriter) {
	for w != nil {
		if c, ok := w.(*compressWriter); ok {
			c.declined = true
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
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
	eligible := !c.declined && code != http.StatusNoContent && code != http.StatusNotModified && code != http.StatusPartialContent &&
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
		return len(p), c.compress(p)
	}
	if len(c.pending) == 0 && len(p) >= c.minLen {
		// The usual case for a large answer: no copy.
		if c.startCompressing() {
			return len(p), c.compress(p)
		}
		return c.ResponseWriter.Write(p)
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

// startCompressing sends the headers of a compressed answer, or, when the
// budget has no encoder free, passes the answer through as it is.
func (c *compressWriter) startCompressing() bool {
	if !c.budget.try() {
		c.passThrough()
		return false
	}
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
	if c.encoding == encGzip {
		// The member's header (RFC 1952): deflate, no name, no time.
		c.out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	}
	c.mu.Lock()
	c.attach()
	c.mu.Unlock()
	return true
}

// attach gives the answer an encoder (its budget place taken), writing to
// out, and starts the idle timer. c.mu is held.
func (c *compressWriter) attach() {
	if c.encoding == encZstd {
		e := zstdEncoders.Get().(*zstd.Encoder)
		e.Reset(&c.out)
		c.enc = e
	} else {
		f := flateWriters.Get().(*flate.Writer)
		f.Reset(&c.out)
		c.enc = f
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(holdIdle, c.letGo)
	} else {
		c.timer.Reset(holdIdle)
	}
}

// detach ends what enc compressed (final: the whole answer's end) and
// gives the encoder and its place back. c.mu is held.
func (c *compressWriter) detach(final bool) {
	var err error
	switch e := c.enc.(type) {
	case *zstd.Encoder:
		err = e.Close()
		e.Reset(nil)
		zstdEncoders.Put(e)
	case *flate.Writer:
		if final {
			err = e.Close()
		} else {
			err = e.Flush()
		}
		e.Reset(io.Discard)
		flateWriters.Put(e)
	}
	_ = err // writes to a bytes.Buffer do not fail
	c.enc = nil
	c.budget.release()
}

// letGo runs on the idle timer: an encoder unused for holdIdle goes back.
func (c *compressWriter) letGo() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc == nil || c.ended {
		return
	}
	if !c.idle {
		c.timer.Reset(holdIdle)
		return
	}
	if d := time.Since(c.since); d < holdIdle {
		c.timer.Reset(holdIdle - d)
		return
	}
	c.detach(false)
}

// busy marks the handler's goroutine as using the encoder (the timer
// leaves it alone) and returns it, taking one again first if the timer
// took it away. nil when the request ended while it waited.
func (c *compressWriter) busy() (encoder, error) {
	c.mu.Lock()
	c.idle = false
	if c.enc == nil && !c.ended {
		c.mu.Unlock()
		if !c.budget.wait(c.ctx) {
			return nil, c.ctx.Err()
		}
		c.mu.Lock()
		c.attach()
	}
	e := c.enc
	c.mu.Unlock()
	return e, nil
}

func (c *compressWriter) compress(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	e, err := c.busy()
	if err != nil {
		return err
	}
	if c.encoding == encGzip {
		c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
		c.size += uint32(len(p))
	}
	if _, err := e.Write(p); err != nil {
		return err
	}
	return c.send()
}

// send writes what the encoder produced to the client. The encoder is idle
// meanwhile: if the client does not take it for holdIdle, the timer lets
// the encoder go, and what that adds to out is sent too.
func (c *compressWriter) send() error {
	for {
		c.mu.Lock()
		c.idle, c.since = true, time.Now()
		if c.out.Len() == 0 {
			c.mu.Unlock()
			return nil
		}
		c.sending = append(c.sending[:0], c.out.Bytes()...)
		c.out.Reset()
		c.mu.Unlock()
		if _, err := c.ResponseWriter.Write(c.sending); err != nil {
			return err
		}
	}
}

func (c *compressWriter) writePending() error {
	var err error
	switch c.state {
	case compressing:
		err = c.compress(c.pending)
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
		c.mu.Lock()
		c.idle = false
		e := c.enc
		c.mu.Unlock()
		if e != nil {
			if err := e.Flush(); err != nil {
				return err
			}
		}
		if err := c.send(); err != nil {
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
		c.mu.Lock()
		c.ended, c.idle = true, false
		c.timer.Stop()
		if c.enc != nil {
			c.detach(true)
		} else if c.encoding == encGzip {
			// The encoder was let go after a flush to a byte boundary: an
			// empty final stored block ends the deflate stream.
			c.out.Write([]byte{1, 0, 0, 0xff, 0xff})
		}
		if c.encoding == encGzip {
			c.out.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, c.crc), c.size))
		}
		c.mu.Unlock()
		return c.send()
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
		h.Set(k, encodingTagSuffixes.Replace(v))
	}
}

// encodingTagSuffixes takes the suffix off a compressed answer's tag; made
// once, not for every revalidation.
var encodingTagSuffixes = strings.NewReplacer("-"+encZstd+`"`, `"`, "-"+encGzip+`"`, `"`)

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
