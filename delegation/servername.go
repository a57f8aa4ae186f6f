package delegation

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ServerName is a parsed Matrix server name: the part after the colon in
// @alice:example.com, and the value of m.server.
//
// The grammar is the specification's (appendices, "Server Name"):
//
//	server_name = hostname [ ":" port ]
//	hostname    = IPv4address / "[" IPv6address "]" / dns-name
//	dns-name    = 1*255dns-char ; DIGIT / ALPHA / "-" / "."
//
// Parsing is a little stricter than the grammar where the grammar admits
// names that no resolver could ever reach (an IPv4 octet above 255, an empty
// DNS label), because those are typing mistakes, not deliberate choices.
type ServerName struct {
	// Host is the hostname as written, without brackets for IPv6.
	Host string
	// Port is 0 when the name has no explicit port.
	Port int
	// IP is set when Host is an IP literal.
	IP netip.Addr
}

// String renders the name in its canonical server-name form.
func (n ServerName) String() string {
	h := n.Host
	if n.IP.Is6() {
		h = "[" + h + "]"
	}
	if n.Port != 0 {
		return h + ":" + strconv.Itoa(n.Port)
	}
	return h
}

// ParseServerName parses s as a Matrix server name. The error says what is
// wrong in words a person can act on.
func ParseServerName(s string) (ServerName, error) {
	if s == "" {
		return ServerName{}, errors.New("is empty")
	}
	if i := strings.Index(s, "://"); i >= 0 {
		return ServerName{}, fmt.Errorf("has a scheme (%q); a server name is host[:port], e.g. %s", s[:i+3], hostPortHint(s[i+3:]))
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		return ServerName{}, fmt.Errorf("has a path or query (%q); a server name is host[:port] only", s[i:])
	}
	host, portStr := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return ServerName{}, errors.New("has an unclosed '[' around an IPv6 address")
		}
		host, portStr = s[1:end], s[end+1:]
		if portStr != "" {
			if portStr[0] != ':' {
				return ServerName{}, fmt.Errorf("has %q after the IPv6 address; only :port may follow", portStr)
			}
			portStr = portStr[1:]
			if portStr == "" {
				return ServerName{}, errors.New("has a ':' but no port")
			}
		}
		ip, err := parseIPv6(host)
		if err != nil {
			return ServerName{}, err
		}
		n := ServerName{Host: host, IP: ip}
		if portStr != "" {
			if n.Port, err = parsePort(portStr); err != nil {
				return ServerName{}, err
			}
		}
		return n, nil
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, portStr = s[:i], s[i+1:]
		if strings.IndexByte(host, ':') >= 0 {
			return ServerName{}, errors.New("looks like a bare IPv6 address; write it in brackets, e.g. [2001:db8::1]:8448")
		}
		if portStr == "" {
			return ServerName{}, errors.New("has a ':' but no port")
		}
	}
	if err := checkHostname(host); err != nil {
		return ServerName{}, err
	}
	n := ServerName{Host: host}
	if isIPv4Shape(host) {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is4() {
			return ServerName{}, fmt.Errorf("has %q, which is not a valid IPv4 address", host)
		}
		n.IP = ip
	}
	if portStr != "" {
		p, err := parsePort(portStr)
		if err != nil {
			return ServerName{}, err
		}
		n.Port = p
	}
	return n, nil
}

// ParseHostname parses a hostname with no port: an entry of the daemon's
// host list, or the host part of a URL.
func ParseHostname(s string) (ServerName, error) {
	n, err := ParseServerName(s)
	if err != nil {
		return ServerName{}, err
	}
	if n.Port != 0 {
		return ServerName{}, fmt.Errorf("has a port (%d); give the hostname alone", n.Port)
	}
	return n, nil
}

func checkHostname(h string) error {
	if h == "" {
		return errors.New("has no hostname")
	}
	if len(h) > 255 {
		return fmt.Errorf("is %d characters long; a DNS name has at most 255", len(h))
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("has %q, which may not appear in a hostname (letters, digits, '-' and '.' only)", rune(c))
		}
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" {
			return fmt.Errorf("%q has an empty label (two dots in a row, or a leading or trailing dot)", h)
		}
		if len(label) > 63 {
			return fmt.Errorf("%q has a label longer than 63 characters", h)
		}
	}
	return nil
}

// isIPv4Shape reports whether h matches the grammar's IPv4address, which
// takes precedence over dns-name: four dot-separated runs of 1-3 digits.
func isIPv4Shape(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

func parseIPv6(h string) (netip.Addr, error) {
	if len(h) < 2 || len(h) > 45 {
		return netip.Addr{}, fmt.Errorf("has %q in brackets, which is not an IPv6 address", h)
	}
	ip, err := netip.ParseAddr(h)
	if err != nil || !ip.Is6() || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("has %q in brackets, which is not an IPv6 address", h)
	}
	return ip, nil
}

func parsePort(s string) (int, error) {
	if len(s) > 5 {
		return 0, fmt.Errorf("has port %q; a port is 1 to 65535", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("has port %q; a port is 1 to 65535", s)
		}
	}
	p, _ := strconv.Atoi(s)
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("has port %q; a port is 1 to 65535", s)
	}
	return p, nil
}

// hostPortHint strips what follows the authority of a URL-ish string, so that
// an error can show the value the user most likely meant.
func hostPortHint(rest string) string {
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" {
		return "matrix.example.com:443"
	}
	return rest
}
