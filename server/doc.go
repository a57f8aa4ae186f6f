// Package server is wellknownd's network side: it listens, routes requests by
// Host, serves the delegation documents, and answers everything else the way
// a Matrix client or server expects (JSON errors with CORS).
//
// Everything a configuration determines is built once into an immutable site
// and swapped in whole, so requests never see half of a configuration.
package server
