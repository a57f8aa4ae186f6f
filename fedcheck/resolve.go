package fedcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/wellknownd/wellknownd/delegation"
)

// Target is one place federation traffic for a server name goes, as the
// spec's "Resolving server names" finds it.
type Target struct {
	// Destination is the host:port to connect to.
	Destination string `json:"destination"`
	// Host is the Host header federation requests carry.
	Host string `json:"host"`
	// TLSServerName is the name the certificate must carry (SNI).
	TLSServerName string `json:"tls_server_name"`
}

// DNSResult is what DNS said along the way.
type DNSResult struct {
	// SRVSkipped: an IP literal or explicit port made SRV irrelevant.
	SRVSkipped bool     `json:"SRVSkipped"`
	SRVName    string   `json:"SRVName,omitempty"`
	SRVRecords []string `json:"SRVRecords,omitempty"`
	SRVError   string   `json:"SRVError,omitempty"`
	// Addrs are the addresses connected to, per destination.
	Addrs map[string][]string `json:"Addrs"`
}

// resolveTargets turns a (possibly delegated) server name into targets,
// without the well-known step: steps 1, 2 and 4-6 of the spec.
func (c *checker) resolveTargets(ctx context.Context, name delegation.ServerName, dns *DNSResult) []Target {
	if name.IP.IsValid() {
		dns.SRVSkipped = true
		port := name.Port
		if port == 0 {
			port = 8448
		}
		return []Target{{Destination: net.JoinHostPort(name.IP.String(), strconv.Itoa(port)), Host: name.String(), TLSServerName: name.Host}}
	}
	if name.Port != 0 {
		dns.SRVSkipped = true
		return []Target{{Destination: name.String(), Host: name.String(), TLSServerName: name.Host}}
	}
	for _, service := range []string{"matrix-fed", "matrix"} {
		dns.SRVName = "_" + service + "._tcp." + name.Host
		_, recs, err := c.resolver.LookupSRV(ctx, service, "tcp", name.Host)
		if err != nil {
			var de *net.DNSError
			if errors.As(err, &de) && de.IsNotFound {
				continue
			}
			dns.SRVError = err.Error()
			break
		}
		if len(recs) == 0 {
			continue
		}
		// net.LookupSRV sorts by priority and shuffles by weight; keep the
		// order it gives, and report it.
		var out []Target
		for _, r := range recs {
			target := strings.TrimSuffix(r.Target, ".")
			dns.SRVRecords = append(dns.SRVRecords, fmt.Sprintf("%d %d %d %s", r.Priority, r.Weight, r.Port, target))
			out = append(out, Target{Destination: net.JoinHostPort(target, strconv.Itoa(int(r.Port))), Host: name.String(), TLSServerName: name.Host})
		}
		return out
	}
	dns.SRVName = ""
	return []Target{{Destination: net.JoinHostPort(name.Host, "8448"), Host: name.String(), TLSServerName: name.Host}}
}

// addrs are the addresses to connect to for a destination: the -resolve
// override, else its A/AAAA records.
func (c *checker) addrs(ctx context.Context, destination string) ([]string, error) {
	if a, ok := c.opts.Resolve[destination]; ok {
		return []string{a}, nil
	}
	host, port, err := net.SplitHostPort(destination)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil {
		return []string{destination}, nil
	}
	ips, err := c.lookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.String(), port))
	}
	sort.Strings(out)
	return out, nil
}
