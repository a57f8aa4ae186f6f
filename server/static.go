package server

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// staticDir serves a directory read-only, as a single-page app such as
// Element Web needs it: index.html for the root and for directories,
// never a listing, never a dotfile (.git, .env), nothing outside the
// directory (os.Root refuses "..", absolute paths and symlinks that leave
// it), and caching by what the file is: the app's entry points
// (index.html, config.json) are revalidated on every load, so that an
// update reaches everyone at once, while content-hashed assets never
// change and are cached for a year.
//
// What a request may hold is bounded: at most one descriptor while a file
// is sent, and only for a file not in memory (staticShared.files caps
// those); compressed variants are made once per version of a file and
// kept (staticcache.go), or read from precompressed files beside it
// (app.js.zst, .br, .gz, as Caddy's precompressed and nginx's gzip_static),
// so a client that stops reading holds no encoder either.
type staticDir struct {
	// dir is opened per request, and closed as soon as the file is: a
	// handle kept open would outlive the site a reload replaces, and
	// would keep serving a release directory that a deployment has
	// swapped for another (a symlink moved); one openat is cheap.
	dir    string
	shared *staticShared
	// compressMin is compression.min_length; 0 when compression is off.
	compressMin int
}

// staticShared are what every static route of the process shares.
type staticShared struct {
	files    *fileSlots
	cache    *staticCache
	encoders *encoderBudget
	metrics  *metrics
}

func newStaticShared(l limits, encoders *encoderBudget, m *metrics) *staticShared {
	return &staticShared{files: newFileSlots(l.staticFiles, m), cache: newStaticCache(l.staticCache), encoders: encoders, metrics: m}
}

// smallFile is the largest file kept in memory as it is (with a sixty-fourth
// of the cache at most): the app's entry points and small assets are then
// sent without a descriptor, whatever clients that stop reading hold.
const smallFile = 256 << 10

// hashedAsset is a file name with a content hash in it (main.3fa1b2c4d5e6.js,
// vendors~init.8b9c0d1e.css) or a file under bundles/<hash>/, Element
// Web's layout for its build output.
var hashedAsset = regexp.MustCompile(`(^|/)bundles/[0-9a-f]{8,}/|[.-][0-9a-f]{8,}\.[a-z0-9]+$`)

// precompressedExt are the files beside a file that hold it compressed,
// by encoding.
var precompressedExt = map[string]string{encZstd: ".zst", encBr: ".br", encGzip: ".gz"}

func (s *staticDir) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if strings.IndexByte(name, 0) >= 0 {
		// No file name holds a NUL (%00); the kernel would refuse it as
		// an invalid argument, which is the client's error, not ours.
		http.NotFound(w, r)
		return
	}
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(seg, ".") {
			http.NotFound(w, r)
			return
		}
	}
	if name == "" {
		name = "index.html"
	}
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		notFoundOr500(w, r, err)
		return
	}
	// Closed before the answer is sent, where it can; this is for the
	// error returns.
	defer root.Close()
	fi, err := root.Stat(name)
	if err != nil {
		notFoundOr500(w, r, err)
		return
	}
	if fi.IsDir() {
		// A directory is its index.html, or nothing: never a listing.
		name = path.Join(name, "index.html")
		if fi, err = root.Stat(name); err != nil {
			notFoundOr500(w, r, err)
			return
		}
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	base := path.Base(name)
	switch {
	case strings.HasSuffix(base, ".html"), base == "config.json" || (strings.HasPrefix(base, "config.") && strings.HasSuffix(base, ".json")):
		h.Set("Cache-Control", "no-cache")
	case hashedAsset.MatchString(name):
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	default:
		h.Set("Cache-Control", "public, max-age=3600")
	}
	if strings.HasSuffix(base, ".json") {
		h.Set("Content-Type", "application/json")
	} else if t := mime.TypeByExtension(path.Ext(base)); t != "" {
		h.Set("Content-Type", t)
	}
	// What Element Web's documentation asks of the server in front of it:
	// no sniffing, no framing by other sites.
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Security-Policy", "frame-ancestors 'self'")

	// This handler chooses the representation itself: the pipeline's
	// compression must not compress it again.
	declineCompression(w)
	compress := s.compressMin > 0 && compressible(h.Get("Content-Type"))
	if compress {
		addVary(h, "Accept-Encoding")
	}
	tag := fileTag(fi)
	if notModified(w, r, tag, fi.ModTime()) {
		return
	}
	// A range is of the file as it is (what nginx and Caddy do for a
	// file compressed on the fly): its bytes are the same for every
	// client, so If-Range and resumed downloads work.
	if compress && r.Header.Get("Range") == "" {
		if s.serveVariant(w, r, root, name, fi, tag) {
			return
		}
	}
	if s.shared.cache.budget > 0 && fi.Size() <= min(smallFile, s.shared.cache.budget/64) {
		data, err := s.shared.cache.load(cacheKey{path: s.dir + "/" + name, mod: fi.ModTime().UnixNano(), size: fi.Size()}, func() ([]byte, bool, error) {
			b, err := readFile(root, name, fi)
			return b, err == nil, err
		})
		root.Close()
		if err != nil {
			notFoundOr500(w, r, err)
			return
		}
		h.Set("ETag", tag)
		http.ServeContent(w, r, base, fi.ModTime(), bytes.NewReader(data))
		return
	}
	f, ok := s.openFile(w, r, root, name)
	if !ok {
		return
	}
	defer s.shared.files.put()
	defer f.Close()
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	h.Set("ETag", fileTag(fi))
	http.ServeContent(w, r, base, fi.ModTime(), f)
}

// serveVariant sends the file compressed, as the client weighs the
// encodings (zstd, then Brotli, then gzip on a tie): from a precompressed
// file beside it that is not older than it, or compressed once and kept.
// It reports false when there is nothing better than the file as it is.
func (s *staticDir) serveVariant(w http.ResponseWriter, r *http.Request, root *os.Root, name string, fi os.FileInfo, tag string) bool {
	q := acceptedCodings(r.Header.Get("Accept-Encoding"))
	order := []struct {
		enc string
		q   float64
	}{{encZstd, q.zstd}, {encBr, q.br}, {encGzip, q.gzip}}
	slices.SortStableFunc(order, func(a, b struct {
		enc string
		q   float64
	}) int {
		return cmp.Compare(b.q, a.q)
	})
	for _, o := range order {
		if o.q <= 0 {
			break
		}
		// A file made ahead, if there is one and it is not stale.
		pre := name + precompressedExt[o.enc]
		if pfi, err := root.Stat(pre); err == nil && pfi.Mode().IsRegular() && !pfi.ModTime().Before(fi.ModTime()) {
			if pfi.Size() <= s.shared.cache.maxEntry() {
				data, err := s.shared.cache.load(cacheKey{path: s.dir + "/" + pre, mod: pfi.ModTime().UnixNano(), size: pfi.Size(), encoding: o.enc}, func() ([]byte, bool, error) {
					b, err := readFile(root, pre, pfi)
					return b, err == nil, err
				})
				if err == nil {
					root.Close()
					sendVariant(w, r, o.enc, tag, fi, bytes.NewReader(data), int64(len(data)))
					return true
				}
				continue
			}
			f, ok := s.openFile(w, r, root, pre)
			if !ok {
				return true
			}
			defer s.shared.files.put()
			defer f.Close()
			sendVariant(w, r, o.enc, tag, fi, f, pfi.Size())
			return true
		}
		// Or compressed here, once per version of the file. Files past a
		// quarter of the cache are sent as they are: compressed per
		// request they would cost many times the CPU of sending them.
		if o.enc == encBr || fi.Size() < int64(s.compressMin) || fi.Size() > s.shared.cache.maxEntry() {
			continue
		}
		data, err := s.shared.cache.load(cacheKey{path: s.dir + "/" + name, mod: fi.ModTime().UnixNano(), size: fi.Size(), encoding: o.enc}, func() ([]byte, bool, error) {
			return s.compressFile(root, name, fi, o.enc)
		})
		if err != nil || data == nil {
			continue
		}
		root.Close()
		sendVariant(w, r, o.enc, tag, fi, bytes.NewReader(data), int64(len(data)))
		return true
	}
	return false
}

// openFile opens name to send it, holding one of limits.static_files
// (put back by the caller) or answering 503 when none came in time. root
// is closed first and opened again: a request that waits for a slot holds
// no descriptor meanwhile.
func (s *staticDir) openFile(w http.ResponseWriter, r *http.Request, root *os.Root, name string) (*os.File, bool) {
	root.Close()
	if !s.shared.files.take(r.Context()) {
		writeBusy(w)
		return nil, false
	}
	root, err := os.OpenRoot(s.dir)
	var f *os.File
	if err == nil {
		f, err = root.Open(name)
		root.Close()
	}
	if err != nil {
		s.shared.files.put()
		notFoundOr500(w, r, err)
		return nil, false
	}
	return f, true
}

// compressFile reads a file and compresses it whole, with an encoder of
// the budget's (none free: the file goes out as it is this time, and
// nothing is kept). nil data, kept, says compression is not worth it
// (less than a tenth saved).
func (s *staticDir) compressFile(root *os.Root, name string, fi os.FileInfo, enc string) ([]byte, bool, error) {
	if !s.shared.encoders.try() {
		return nil, false, nil
	}
	defer s.shared.encoders.release()
	plain, err := readFile(root, name, fi)
	if err != nil {
		return nil, false, err
	}
	s.shared.metrics.staticCompressions.WithLabelValues(enc).Inc()
	var out []byte
	if enc == encZstd {
		e := zstdStaticEncoders.Get().(*zstd.Encoder)
		out = e.EncodeAll(plain, make([]byte, 0, len(plain)/2))
		zstdStaticEncoders.Put(e)
	} else {
		var b bytes.Buffer
		b.Grow(len(plain) / 2)
		g := gzipStaticEncoders.Get().(*gzip.Writer)
		g.Reset(&b)
		g.Write(plain)
		g.Close()
		g.Reset(io.Discard)
		gzipStaticEncoders.Put(g)
		out = b.Bytes()
	}
	if len(out) > len(plain)*9/10 {
		return nil, true, nil
	}
	return slices.Clip(out), true, nil
}

// readFile reads a file whole, as fi found it; a file that is being
// rewritten meanwhile is an error, not a half-read version kept.
func readFile(root *os.Root, name string, fi os.FileInfo) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if now, err := f.Stat(); err != nil || now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime()) {
		return nil, fmt.Errorf("reading %s: it changed meanwhile", name)
	}
	return b, nil
}

// sendVariant sends a compressed variant: with its length, its own tag
// ("abc" becomes "abc-zstd", as the pipeline's compression does), and no
// ranges (a range request is answered from the file as it is).
func sendVariant(w http.ResponseWriter, r *http.Request, enc, tag string, fi os.FileInfo, body io.Reader, size int64) {
	h := w.Header()
	h.Set("Content-Encoding", enc)
	h.Set("ETag", tagFor(tag, enc))
	h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.Copy(w, body)
	}
}

// fileTag is a strong ETag for one version of a file, by its time of
// change and size, as nginx makes it.
func fileTag(fi os.FileInfo) string {
	return `"` + strconv.FormatInt(fi.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(fi.Size(), 16) + `"`
}

// tagFor is the tag of tag's variant in encoding enc.
func tagFor(tag, enc string) string {
	return tag[:len(tag)-1] + "-" + enc + `"`
}

// notModified answers 304 when the client holds this version of the file,
// as it is or in any encoding: If-None-Match (whose tags the pipeline may
// have stripped of their encoding, stripEncodingTags) or, without it,
// If-Modified-Since. The 304 names the tag the client sent.
func notModified(w http.ResponseWriter, r *http.Request, tag string, mod time.Time) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	inm := r.Header.Get("If-None-Match")
	matched := ""
	if inm != "" {
		for t := range strings.SplitSeq(inm, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" {
				matched = tag
				break
			}
			for _, enc := range []string{"", encZstd, encBr, encGzip} {
				if (enc == "" && t == tag) || (enc != "" && t == tagFor(tag, enc)) {
					matched = t
				}
			}
			if matched != "" {
				break
			}
		}
		if matched == "" {
			return false
		}
	} else if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err != nil || mod.Truncate(time.Second).After(ims) {
		return false
	} else {
		matched = tag
	}
	h := w.Header()
	h.Set("ETag", matched)
	h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	h.Del("Content-Type")
	w.WriteHeader(http.StatusNotModified)
	return true
}

func notFoundOr500(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "escapes") {
		http.NotFound(w, r)
		return
	}
	http.Error(w, "Internal Server Error", http.StatusInternalServerError)
}
