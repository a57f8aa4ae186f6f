package slidingsync

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type metrics struct {
	pollers  prometheus.Gauge
	polls    *prometheus.CounterVec
	requests *prometheus.CounterVec
	wakeup   prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		pollers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wellknownd_slidingsync_pollers",
			Help: "Devices whose v2 /sync this edge polls for sliding sync.",
		}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wellknownd_slidingsync_polls_total",
			Help: "v2 /sync polls of the homeserver by result: ok, error, revoked.",
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wellknownd_slidingsync_requests_total",
			Help: "Sliding sync requests by outcome: ok, or the Matrix error code answered.",
		}, []string{"outcome"}),
		wakeup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wellknownd_slidingsync_wakeup_seconds",
			Help:    "From a poll's answer being stored to a waiting sliding sync request answering with it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
	}
}

// Describe and Collect make a Service a prometheus.Collector: the edge
// registers it beside its own metrics.
func (s *Service) Describe(ch chan<- *prometheus.Desc) {
	s.metrics.pollers.Describe(ch)
	s.metrics.polls.Describe(ch)
	s.metrics.requests.Describe(ch)
	s.metrics.wakeup.Describe(ch)
}

// Collect sends the service's current figures.
func (s *Service) Collect(ch chan<- prometheus.Metric) {
	s.metrics.pollers.Collect(ch)
	s.metrics.polls.Collect(ch)
	s.metrics.requests.Collect(ch)
	s.metrics.wakeup.Collect(ch)
}

// wakeupSummary is the wake-up histogram in words, for benchmarks and
// the log: how many, their mean, and how many within 100 ms.
func (s *Service) wakeupSummary() string {
	var m dto.Metric
	if err := s.metrics.wakeup.Write(&m); err != nil {
		return err.Error()
	}
	h := m.GetHistogram()
	n := h.GetSampleCount()
	if n == 0 {
		return "none"
	}
	within := uint64(0)
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 0.1 {
			within = b.GetCumulativeCount()
		}
	}
	return fmt.Sprintf("%d wake-ups, mean %.1f ms, %d within 100 ms", n, h.GetSampleSum()/float64(n)*1000, within)
}
