package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wellknownd/wellknownd/server/supervise"
)

// stateCollector exports, at scrape time, state that lives elsewhere:
// certificates, the upstream, the supervised processes. Reading it at
// scrape time means no second copy to keep in sync.
type stateCollector struct {
	s                                       *Server
	notAfter, upstreamUp                    *prometheus.Desc
	supUp, supState, supRestarts, supUptime *prometheus.Desc
	supCrashLoop                            *prometheus.Desc
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
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.notAfter, c.upstreamUp, c.supUp, c.supState, c.supRestarts, c.supUptime, c.supCrashLoop} {
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
