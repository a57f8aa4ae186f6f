package delegation

import (
	"strings"
	"testing"
)

func TestParseServerName(t *testing.T) {
	valid := []struct {
		in   string
		host string
		port int
		ip   bool
	}{
		{"example.com", "example.com", 0, false},
		{"matrix.example.com:443", "matrix.example.com", 443, false},
		{"localhost", "localhost", 0, false},
		{"1.2.3.4", "1.2.3.4", 0, true},
		{"1.2.3.4:8448", "1.2.3.4", 8448, true},
		{"[1234:5678::abcd]", "1234:5678::abcd", 0, true},
		{"[1234:5678::abcd]:5678", "1234:5678::abcd", 5678, true},
		{"[::ffff:1.2.3.4]:1", "::ffff:1.2.3.4", 1, true},
		{"a-b.c-d.example", "a-b.c-d.example", 0, false},
		{"EXAMPLE.com:65535", "EXAMPLE.com", 65535, false},
		// The spec's grammar lets a dns-name be all digits when it is not
		// exactly four dotted groups.
		{"123", "123", 0, false},
		{"1.2.3", "1.2.3", 0, false},
	}
	for _, tc := range valid {
		n, err := ParseServerName(tc.in)
		if err != nil {
			t.Errorf("ParseServerName(%q): unexpected error %v", tc.in, err)
			continue
		}
		if n.Host != tc.host || n.Port != tc.port || n.IP.IsValid() != tc.ip {
			t.Errorf("ParseServerName(%q) = host %q port %d ip %v; want %q %d %v", tc.in, n.Host, n.Port, n.IP, tc.host, tc.port, tc.ip)
		}
		if n.String() != tc.in {
			t.Errorf("ParseServerName(%q).String() = %q", tc.in, n.String())
		}
	}

	invalid := []struct{ in, want string }{
		{"", "is empty"},
		{"https://matrix.example.com", `has a scheme ("https://"); a server name is host[:port], e.g. matrix.example.com`},
		{"https://matrix.example.com:443/", `has a scheme ("https://"); a server name is host[:port], e.g. matrix.example.com:443`},
		{"matrix.example.com/_matrix", `has a path or query ("/_matrix")`},
		{"example.com:", "has a ':' but no port"},
		{"example.com:0", `has port "0"; a port is 1 to 65535`},
		{"example.com:65536", `has port "65536"; a port is 1 to 65535`},
		{"example.com:123456", `has port "123456"`},
		{"example.com:8a", `has port "8a"`},
		{"example.com:-1", `has port "-1"`},
		{"exa mple.com", `has ' ', which may not appear in a hostname`},
		{"exam_ple.com", `has '_', which may not appear in a hostname`},
		{"ex..com", `"ex..com" has an empty label`},
		{".example.com", "has an empty label"},
		{"example.com.", "has an empty label"},
		{"256.1.1.1", `has "256.1.1.1", which is not a valid IPv4 address`},
		{"1.2.3.04", `not a valid IPv4 address`},
		{"::1", "looks like a bare IPv6 address; write it in brackets"},
		{"[::1", "has an unclosed '['"},
		{"[::1]x", `has "x" after the IPv6 address`},
		{"[::1]:", "has a ':' but no port"},
		{"[example.com]", `has "example.com" in brackets, which is not an IPv6 address`},
		{"[1.2.3.4]", "which is not an IPv6 address"},
		{"[fe80::1%eth0]", "which is not an IPv6 address"},
		{strings.Repeat("a", 64) + ".com", "has a label longer than 63 characters"},
		{strings.Repeat("a.", 128) + "com", "is 259 characters long; a DNS name has at most 255"},
		{"exämple.com", "which may not appear in a hostname"},
	}
	for _, tc := range invalid {
		_, err := ParseServerName(tc.in)
		if err == nil {
			t.Errorf("ParseServerName(%q): no error, want %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseServerName(%q) error = %q, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestParseHostnameRefusesPort(t *testing.T) {
	if _, err := ParseHostname("example.com:443"); err == nil || err.Error() != "has a port (443); give the hostname alone" {
		t.Fatalf("ParseHostname with port: err = %v", err)
	}
	if n, err := ParseHostname("[::1]"); err != nil || !n.IP.IsLoopback() {
		t.Fatalf("ParseHostname([::1]) = %v, %v", n, err)
	}
}

// FuzzParseServerName checks that parsing never panics and that whatever
// parses renders to a canonical text that parses again to the same value.
func FuzzParseServerName(f *testing.F) {
	for _, s := range []string{"example.com", "a:1", "[::1]:8448", "1.2.3.4", "https://x/y", "[", "::", "a..b", "[::ffff:1.2.3.4]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseServerName(s)
		if err != nil {
			return
		}
		again, err := ParseServerName(n.String())
		if err != nil || again != n {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
		if n.Port < 0 || n.Port > 65535 {
			t.Fatalf("port %d out of range for %q", n.Port, s)
		}
	})
}
