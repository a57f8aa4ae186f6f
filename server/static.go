package server

import (
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
)

// staticDir serves a directory read-only, as a single-page app such as
// Element Web needs it: index.html for the root and for directories,
// never a listing, never a dotfile (.git, .env), nothing outside the
// directory (os.Root refuses "..", absolute paths and symlinks that leave
// it), and caching by what the file is: the app's entry points
// (index.html, config.json) are revalidated on every load, so that an
// update reaches everyone at once, while content-hashed assets never
// change and are cached for a year.
type staticDir struct {
	// dir is opened per request: a handle kept open would outlive the
	// site a reload replaces, and one openat is cheap.
	dir string
}

// hashedAsset is a file name with a content hash in it (main.3fa1b2c4d5e6.js,
// vendors~init.8b9c0d1e.css) or a file under bundles/<hash>/, Element
// Web's layout for its build output.
var hashedAsset = regexp.MustCompile(`(^|/)bundles/[0-9a-f]{8,}/|[.-][0-9a-f]{8,}\.[a-z0-9]+$`)

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
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		notFoundOr500(w, r, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		notFoundOr500(w, r, err)
		return
	}
	if fi.IsDir() {
		// A directory is its index.html, or nothing: never a listing.
		f.Close()
		name = path.Join(name, "index.html")
		if f, err = root.Open(name); err != nil {
			notFoundOr500(w, r, err)
			return
		}
		defer f.Close()
		if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
			http.NotFound(w, r)
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
	http.ServeContent(w, r, base, fi.ModTime(), f)
}

func notFoundOr500(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "escapes") {
		http.NotFound(w, r)
		return
	}
	http.Error(w, "Internal Server Error", http.StatusInternalServerError)
}
