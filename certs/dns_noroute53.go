//go:build !route53

package certs

import (
	"github.com/go-acme/lego/v5/challenge"

	"github.com/wellknownd/wellknownd/config"
)

// route53Provider: this build has no Route 53. Validation says so first,
// naming the field; this is the backstop.
func route53Provider(config.DNS, map[string]string) (challenge.Provider, error) {
	return nil, config.ErrRoute53NotBuilt
}
