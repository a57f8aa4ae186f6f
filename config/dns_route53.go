//go:build route53

package config

// route53Built: this binary was built with -tags route53.
const route53Built = true
