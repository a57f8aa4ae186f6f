//go:build !route53

package config

// route53Built: this binary was built without -tags route53, so without
// the AWS SDK (docs/dns-01.md).
const route53Built = false
