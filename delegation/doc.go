// Package delegation builds and checks the Matrix discovery documents that a
// server name publishes under /.well-known/matrix/: server, client and support.
//
// It is pure: it parses and validates names and URLs against the Matrix
// specification and renders the JSON a homeserver's peers read. It knows
// nothing of listeners, files or configuration syntax, so that the daemon, the
// validator and the federation checker all agree on one reading of the spec.
package delegation
