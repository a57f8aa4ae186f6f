package server

import "net/http"

// Header values are built once and assigned by key, not with Header.Set: it
// saves canonicalising the key and allocating a slice on the hot path. The
// slices are never appended to, so sharing them between responses is safe.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerNoSniff = []string{"nosniff"}
	headerAnyOrg  = []string{"*"}
	headerAllowed = []string{"X-Requested-With, Content-Type, Authorization"}
)

// corsMethods is the Access-Control-Allow-Methods value for a kind of host.
type corsMethods []string

var (
	// corsReadOnly is for hosts that serve only the documents.
	corsReadOnly = corsMethods{"GET, HEAD, OPTIONS"}
	// corsClientAPI is the set the client-server spec recommends, for hosts
	// where the client API is served.
	corsClientAPI = corsMethods{"GET, HEAD, POST, PUT, DELETE, OPTIONS"}
)

// setCORS writes the CORS headers the Matrix spec asks for. They go on every
// answer a browser client may read, errors and preflights included.
func setCORS(h http.Header, methods corsMethods) {
	h["Access-Control-Allow-Origin"] = headerAnyOrg
	h["Access-Control-Allow-Methods"] = methods
	h["Access-Control-Allow-Headers"] = headerAllowed
}
