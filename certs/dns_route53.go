//go:build route53

package certs

import (
	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/route53"

	"github.com/wellknownd/wellknownd/config"
)

// route53Provider builds lego's Route 53 provider. It is the one provider
// behind a build tag: it links the AWS SDK, whose package initialisation
// every process would otherwise pay for (docs/dns-01.md).
func route53Provider(d config.DNS, secrets map[string]string) (challenge.Provider, error) {
	c := route53.NewDefaultConfig()
	c.AccessKeyID, c.SecretAccessKey, c.SessionToken = secrets["AWS_ACCESS_KEY_ID"], secrets["AWS_SECRET_ACCESS_KEY"], secrets["AWS_SESSION_TOKEN"]
	if d.Route53.Region != "" {
		c.Region = d.Route53.Region
	}
	if d.Route53.HostedZoneID != "" {
		c.HostedZoneID = d.Route53.HostedZoneID
	}
	return route53.NewDNSProviderConfig(c)
}
