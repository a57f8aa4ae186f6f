package server

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// newWebProxy forwards the base domain's web traffic (the project's site) to
// target, keeping the Host the visitor asked for.
func newWebProxy(target *url.URL, up upstreamDeps) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:  up.transport,
		BufferPool: up.buffers,
		ModifyResponse: func(resp *http.Response) error {
			dropTransportPolicy(resp.Header)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			up.log.LogAttrs(r.Context(), slog.LevelWarn, "base domain proxy failed", slog.String("upstream", target.Redacted()), slog.Any("err", err))
			writeMatrixError(w, corsReadOnly, http.StatusBadGateway, codeUnknown, "The web site behind this domain is not reachable")
		},
	}
}
