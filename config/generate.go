package config

// The configuration reference is generated from the comments of the fields
// declared in this package and from Default; config/reference_test.go fails
// when it is stale.
//go:generate go run ../internal/confref/gen
