package acmetest

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/wellknownd/wellknownd/internal/testing/dnstest"
)

// startZoneServer runs the DNS server that certmagic asks while solving
// dns-01: it is authoritative for every name (an SOA at the name's last two
// labels, as for example.com) and answers TXT queries from the records the
// provider wrote into challtestsrv, so certmagic's zone detection and
// propagation check run for real. challtestsrv itself answers SOA queries
// with NOTIMP, which ends certmagic's zone detection.
func (c *CA) startZoneServer(t testing.TB) string {
	return dnstest.Serve(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			zone := zoneOf(q.Name)
			switch q.Qtype {
			case dns.TypeSOA:
				soa := &dns.SOA{
					Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
					Ns:  "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 0,
				}
				// At the apex the SOA is the answer; below it, the
				// authority that says where the zone starts.
				if strings.EqualFold(q.Name, zone) {
					m.Answer = append(m.Answer, soa)
				} else {
					m.Ns = append(m.Ns, soa)
				}
			case dns.TypeTXT:
				for _, v := range c.DNS.GetDNSTXTRecords(q.Name) {
					m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{v}})
				}
			}
		}
		w.WriteMsg(m)
	}))
}

// zoneOf is the last two labels of name, fully qualified.
func zoneOf(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) > 2 {
		labels = labels[len(labels)-2:]
	}
	return dns.Fqdn(strings.Join(labels, "."))
}
