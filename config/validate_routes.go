package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ReservedPrefixes are the paths that are always the homeserver's or the
// documents': no route may take them or anything below them.
var ReservedPrefixes = []string{"/_matrix", "/_synapse", "/_dendrite", "/.well-known/matrix"}

// routePath is a prefix of whole, plain segments; validPath also refuses
// the dot-segments.
var routePath = regexp.MustCompile(`^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$`)

func validPath(p string) bool {
	if !routePath.MatchString(p) {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// UnderPrefix says whether path is prefix or below it, by whole segments.
func UnderPrefix(path, prefix string) bool {
	return prefix == "/" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

func (v *validator) validateRoutes() {
	c := v.cfg
	for i := range c.Routes {
		r := &c.Routes[i]
		f := fmt.Sprintf("routes[%d]", i)
		if r.Path != "/" {
			r.Path = strings.TrimSuffix(r.Path, "/")
		}
		r.Host = strings.ToLower(r.Host)
		switch {
		case IsWildcard(r.Host):
			v.errf(f+".host", "%q is a wildcard; a route names one host (a wildcard in hosts covers it)", r.Host)
		case r.Host != "" && HostEntry(c.Hosts, r.Host) == "":
			v.errf(f+".host", "%q is not in hosts; add it there (certificates are obtained for hosts, and other names get 421)", r.Host)
		}
		if !validPath(r.Path) {
			v.errf(f+".path", "%q is not a path prefix of plain segments, such as / or /element", r.Path)
		} else {
			for _, res := range ReservedPrefixes {
				if UnderPrefix(r.Path, res) && r.Path != "/" {
					v.errf(f+".path", "%q overlaps %s/, which is always the homeserver's (or the documents'); choose another prefix or a host of its own", r.Path, res)
				}
			}
		}
		switch {
		case (r.Upstream == "") == (r.Static == ""):
			v.errf(f, "needs exactly one of upstream (a server) and static (a directory)")
		case r.Upstream != "":
			u, err := url.Parse(r.Upstream)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
				v.errf(f+".upstream", "%q: give a server as http://HOST:PORT or https://HOST, without path or credentials", r.Upstream)
			} else {
				r.Target = u
			}
		default:
			switch fi, err := os.Stat(r.Static); {
			case !filepath.IsAbs(r.Static):
				v.errf(f+".static", "%q must be an absolute path", r.Static)
			case err != nil:
				v.errf(f+".static", "cannot be read: %v", unwrapPathError(err))
			case !fi.IsDir():
				v.errf(f+".static", "%s is not a directory", r.Static)
			}
		}
		base := strings.ToLower(c.BaseHost())
		if r.Path == "/" && (r.Host == "" || r.Host == base) && (c.BaseDomain.Redirect != "" || c.BaseDomain.Proxy != "") {
			v.errf(f+".path", "/ on %s overlaps base_domain, which already answers there; use one or the other", base)
		}
		for j := range i {
			o := c.Routes[j]
			// A route for a name wins over one for every name; two of the
			// same kind must not overlap.
			if o.Host == r.Host && (UnderPrefix(r.Path, o.Path) || UnderPrefix(o.Path, r.Path)) {
				v.errf(f+".path", "%q overlaps routes[%d] (%s%s, line %d): each request must have one route", r.Path, j, o.Host, o.Path, v.line(fmt.Sprintf("routes[%d]", j)))
			}
		}
	}
}
