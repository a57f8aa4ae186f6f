package certs

import "github.com/wellknownd/wellknownd/config"

// route53InBuild: this test binary has lego's Route 53 provider (-tags
// route53), known by whether the backstop error is what it builds.
var route53InBuild = func() bool {
	_, err := route53Provider(config.DNS{}, nil)
	return err != config.ErrRoute53NotBuilt
}()
