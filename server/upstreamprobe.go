package server

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// probeInterval is how often the upstream is probed when nothing is
// supervised; /readyz follows it within one interval.
const probeInterval = 5 * time.Second

// probeUpstream asks the homeserver, every interval until ctx ends, for
// its client API versions, and sets upstreamUp from the answer. Without it
// /readyz would know the upstream only from proxied requests: it would say
// "ready" before the first one, and once a request failed, "not ready"
// until another succeeded, which a load balancer that stopped sending
// traffic on the 503 would never send. With supervision, the supervisor's
// probes say it instead.
func (s *Server) probeUpstream(ctx context.Context, interval time.Duration) {
	c := &http.Client{Transport: s.up.transport, Timeout: min(interval, 5*time.Second),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	probe := func() {
		url := strings.TrimSuffix(s.config().Upstream.URL, "/") + "/_matrix/client/versions"
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := c.Do(req)
		up := err == nil && resp.StatusCode < 500
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				// Whether the homeserver serves sliding sync itself
				// (slidingsync.go): re-evaluated at every probe.
				s.ss.observeBody(resp.Body)
			}
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return
		}
		if was := s.m.upstreamUp.Swap(up); was != up {
			if up {
				s.log.Info("upstream answers again", "url", url)
			} else {
				s.log.Warn("upstream does not answer", "url", url, "err", err)
			}
		}
	}
	probe()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			probe()
		}
	}
}
