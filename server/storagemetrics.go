package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wellknownd/wellknownd/certs"
)

// storageReporter is a certificate source that keeps certificates in a
// storage (ACME, the local CA), as opposed to files it only reads.
type storageReporter interface {
	StorageStatus() certs.StorageStatus
}

// storageStatus is the current source's storage state, if it has one.
func (s *Server) storageStatus() (certs.StorageStatus, bool) {
	if src := s.Certificates(); src != nil {
		if r, ok := src.(storageReporter); ok {
			return r.StorageStatus(), true
		}
	}
	return certs.StorageStatus{}, false
}

// storageCollector exports the certificate storage's state, read when
// scraped: whether it answers, its errors, and the locks that coordinate
// several edges.
type storageCollector struct {
	status                      func() (certs.StorageStatus, bool)
	up, errors, lost, lockTrips *prometheus.Desc
}

func newStorageCollector(status func() (certs.StorageStatus, bool)) *storageCollector {
	return &storageCollector{status: status,
		up: prometheus.NewDesc("wellknownd_tls_storage_up",
			"1 when the certificate storage (kind: files or postgres) answers; while it is 0, certificates in memory keep serving and it is retried.", []string{"kind"}, nil),
		errors: prometheus.NewDesc("wellknownd_tls_storage_errors_total",
			"Operations on the certificate storage that failed because it did not answer.", []string{"kind"}, nil),
		lost: prometheus.NewDesc("wellknownd_tls_storage_locks_lost_total",
			"Locks this edge lost before its work under them was done (its lease could not be renewed in time).", []string{"kind"}, nil),
		lockTrips: prometheus.NewDesc("wellknownd_tls_storage_lock_round_trips_total",
			"Statements sent to take, renew and release the locks shared with other edges.", []string{"kind"}, nil),
	}
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.errors
	ch <- c.lost
	ch <- c.lockTrips
}

func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.status()
	if !ok {
		return
	}
	up := 0.0
	if st.Reachable {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, st.Kind)
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.Errors), st.Kind)
	ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(st.LostLocks), st.Kind)
	ch <- prometheus.MustNewConstMetric(c.lockTrips, prometheus.CounterValue, float64(st.LockRoundTrips), st.Kind)
}
