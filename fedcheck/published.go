package fedcheck

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/wellknownd/wellknownd/delegation"
)

// Published is one discovery document as a server name's host serves it
// today: what remote servers have cached and what clients were told.
// "wellknownd adopt" keeps it.
type Published struct {
	// URL is where it was fetched.
	URL string `json:"url"`
	// Body is the document, byte for byte, when the host answered 200;
	// nil otherwise.
	Body []byte `json:"body,omitempty"`
	// Problem says why there is no Body: the fetch failed, or the host
	// answered another status.
	Problem string `json:"problem,omitempty"`
}

// FetchPublished fetches /.well-known/matrix/server and /client of name as
// a remote server and a client would: over https to port 443 of its host
// (Options.Resolve and Roots apply), redirects followed, at most 50 KB
// (server) and 64 KiB (client) read.
func FetchPublished(ctx context.Context, name delegation.ServerName, opts Options) (server, client Published) {
	c := newChecker(name.String(), opts)
	fetch := func(doc string, limit int64) Published {
		p := Published{URL: "https://" + name.Host + "/.well-known/matrix/" + doc}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
		if err != nil {
			p.Problem = err.Error()
			return p
		}
		resp, err := c.httpClient(false).Do(req)
		if err != nil {
			p.Problem = "fetching it failed: " + shortErr(err)
			return p
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		switch {
		case err != nil:
			p.Problem = "reading it failed: " + err.Error()
		case resp.StatusCode != http.StatusOK:
			p.Problem = "it answered " + resp.Status
		case int64(len(body)) > limit:
			p.Problem = fmt.Sprintf("it is larger than the %d bytes servers and clients read", limit)
		default:
			p.Body = body
		}
		return p
	}
	return fetch("server", wellKnownMaxSize), fetch("client", 64<<10)
}
