package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wellknownd/wellknownd/supervise"
)

// stateCollector exports, at scrape time, state that lives elsewhere:
// certificates, the upstream, the supervised processes. Reading it at
// scrape time means no second copy to keep in sync.
type stateCollector struct {
	s                                       *Server
	notAfter, upstreamUp                    *prometheus.Desc
	supUp, supState, supRestarts, supUptime *prometheus.Desc
	supCrashLoop                            *prometheus.Desc
	connsOpen, connsMax, connsReached       *prometheus.Desc
	connsEvicted                            *prometheus.Desc
	connsHeaderTimeouts                     *prometheus.Desc
	upstreamConns                           *prometheus.Desc
}

func newStateCollector(s *Server) *stateCollector {
	return &stateCollector{
		s: s,
		notAfter: prometheus.NewDesc("wellknownd_certificate_not_after_timestamp_seconds",
			"Expiry of the certificate served for each name in hosts, as a Unix time; 0 while there is none.", []string{"name"}, nil),
		upstreamUp: prometheus.NewDesc("wellknownd_upstream_up",
			"1 when the homeserver can answer: every supervised entry ready, or (unsupervised) its last connection succeeded.", nil, nil),
		supUp: prometheus.NewDesc("wellknownd_supervised_up",
			"1 when the supervised entry is ready.", []string{"name"}, nil),
		supState: prometheus.NewDesc("wellknownd_supervised_state",
			"1 for the state the supervised entry is in, 0 for the others.", []string{"name", "state"}, nil),
		supRestarts: prometheus.NewDesc("wellknownd_supervised_restarts_total",
			"Times the supervised entry was restarted after exiting.", []string{"name"}, nil),
		supUptime: prometheus.NewDesc("wellknownd_supervised_uptime_seconds",
			"How long the supervised process has been running; 0 when it is not.", []string{"name"}, nil),
		supCrashLoop: prometheus.NewDesc("wellknownd_supervised_crash_looping",
			"1 while the supervised entry exits again and again soon after starting.", []string{"name"}, nil),
		connsOpen: prometheus.NewDesc("wellknownd_connections_open",
			"Client connections open on the public listeners (http, https, federation).", nil, nil),
		connsMax: prometheus.NewDesc("wellknownd_connections_max",
			"The cap on client connections of the public listeners (limits.max_conns, or derived from the descriptor limit).", nil, nil),
		connsReached: prometheus.NewDesc("wellknownd_connections_limit_reached_total",
			"Connections that had to wait for a slot because the cap was reached.", nil, nil),
		connsEvicted: prometheus.NewDesc("wellknownd_connections_evicted_total",
			"Connections closed at the cap to make room, each the one that had waited longest on its client (idle keep-alive, unfinished headers, a body not started).", nil, nil),
		connsHeaderTimeouts: prometheus.NewDesc("wellknownd_connections_header_timeouts_total",
			"Connections closed for taking longer than 10 s over a TLS handshake or a request's headers.", nil, nil),
		upstreamConns: prometheus.NewDesc("wellknownd_upstream_connections",
			"Requests holding a connection to each upstream host, of at most limits.upstream_conns.", []string{"upstream"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.notAfter, c.upstreamUp, c.supUp, c.supState, c.supRestarts, c.supUptime, c.supCrashLoop,
		c.connsOpen, c.connsMax, c.connsReached, c.connsEvicted, c.connsHeaderTimeouts, c.upstreamConns} {
		ch <- d
	}
}

var allStates = []supervise.State{supervise.Waiting, supervise.Starting, supervise.Ready, supervise.Unhealthy,
	supervise.Backoff, supervise.Stopping, supervise.Exited, supervise.Failed}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if src := c.s.Certificates(); src != nil {
		for _, st := range src.Status() {
			v := 0.0
			if !st.NotAfter.IsZero() {
				v = float64(st.NotAfter.Unix())
			}
			ch <- prometheus.MustNewConstMetric(c.notAfter, prometheus.GaugeValue, v, st.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.upstreamUp, prometheus.GaugeValue, bool01(c.s.upstreamReady()))
	cl := c.s.conns
	ch <- prometheus.MustNewConstMetric(c.connsOpen, prometheus.GaugeValue, float64(cl.open()))
	ch <- prometheus.MustNewConstMetric(c.connsMax, prometheus.GaugeValue, float64(cap(cl.slots)))
	ch <- prometheus.MustNewConstMetric(c.connsReached, prometheus.CounterValue, float64(cl.reached.Load()))
	ch <- prometheus.MustNewConstMetric(c.connsEvicted, prometheus.CounterValue, float64(cl.evicted.Load()))
	ch <- prometheus.MustNewConstMetric(c.connsHeaderTimeouts, prometheus.CounterValue, float64(cl.headerTimeouts.Load()))
	for host, n := range c.s.up.slots.inUse() {
		ch <- prometheus.MustNewConstMetric(c.upstreamConns, prometheus.GaugeValue, float64(n), host)
	}
	if c.s.sup == nil {
		return
	}
	for _, st := range c.s.sup.Status() {
		ch <- prometheus.MustNewConstMetric(c.supUp, prometheus.GaugeValue, bool01(st.State == supervise.Ready), st.Name)
		for _, state := range allStates {
			ch <- prometheus.MustNewConstMetric(c.supState, prometheus.GaugeValue, bool01(st.State == state), st.Name, string(state))
		}
		ch <- prometheus.MustNewConstMetric(c.supRestarts, prometheus.CounterValue, float64(st.Restarts), st.Name)
		ch <- prometheus.MustNewConstMetric(c.supUptime, prometheus.GaugeValue, st.UptimeSeconds, st.Name)
		ch <- prometheus.MustNewConstMetric(c.supCrashLoop, prometheus.GaugeValue, bool01(st.CrashLooping), st.Name)
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
