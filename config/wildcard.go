package config

import (
	"slices"
	"strconv"
	"strings"
)

// IsWildcard says whether a hosts entry is a wildcard name, *.example.com.
func IsWildcard(h string) bool { return strings.HasPrefix(h, "*.") }

// WildcardCovers says whether the wildcard entry covers name: a wildcard
// stands for exactly one whole leftmost label (RFC 6125 §6.4.3), so
// *.example.com covers matrix.example.com but neither example.com nor
// a.b.example.com. Both are compared without regard to case.
func WildcardCovers(wildcard, name string) bool {
	if !IsWildcard(wildcard) {
		return false
	}
	_, parent, ok := strings.Cut(name, ".")
	return ok && !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "*") && strings.EqualFold(parent, wildcard[2:])
}

// HostEntry is the hosts entry that serves name: name itself when it is
// listed, else a wildcard that covers it, else "". The result is lower case.
func HostEntry(hosts []string, name string) string {
	var wild string
	for _, h := range hosts {
		if strings.EqualFold(h, name) {
			return strings.ToLower(h)
		}
		if wild == "" && WildcardCovers(h, name) {
			wild = strings.ToLower(h)
		}
	}
	return wild
}

// CertificateNames are the names to hold certificates for: hosts, lower
// case, less the names a wildcard in hosts already covers, so that one
// certificate serves them all.
func CertificateNames(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if !IsWildcard(h) && slices.ContainsFunc(hosts, func(w string) bool { return WildcardCovers(w, h) }) {
			continue
		}
		out = append(out, strings.ToLower(h))
	}
	return out
}

// validateWildcards allows a wildcard in hosts only where a CA can
// validate it: tls.mode acme with the dns-01 challenge.
func (v *validator) validateWildcards() {
	t := v.cfg.TLS
	var why string
	switch {
	case t.Mode != TLSACME:
		why = ", which only tls.mode acme with the dns-01 challenge serves"
	case !slices.Contains(t.Challenges, ChallengeDNS01):
		why = "; a CA validates a wildcard name only by dns-01, which is not in tls.challenges"
	default:
		return
	}
	for i, h := range v.cfg.Hosts {
		if IsWildcard(h) {
			v.errf("hosts["+strconv.Itoa(i)+"]", "%q is a wildcard%s", h, why)
		}
	}
}
