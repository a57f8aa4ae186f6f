package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routeClass is the route label of request metrics, as an index into
// routeClasses: a request picks its pre-curried metrics by it.
type routeClass int

const (
	classWellKnown routeClass = iota
	classClient
	classFederation
	classOther
	numRouteClasses
)

// routeClasses are the label values, by routeClass.
var routeClasses = [numRouteClasses]string{
	classWellKnown:  "wellknown",
	classClient:     "client",
	classFederation: "federation",
	classOther:      "other",
}

// hostUnknown is the host label of requests for names not in hosts: the
// label never carries a raw Host header, which anyone can fill.
const hostUnknown = "unknown"

// metrics are the daemon's Prometheus metrics, on a registry of its own
// (no package globals: several servers may live in one test process).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// inflight is read when scraped: a plain counter costs a request one
	// atomic add each way, where a Gauge's float takes a compare-and-swap
	// loop on a word every core writes.
	inflight    atomic.Int64
	proxyErrors *prometheus.CounterVec
	certEvents  *prometheus.CounterVec
	// byProtocol counts requests over HTTP/1, HTTP/2 and HTTP/3.
	byProtocol [3]prometheus.Counter
	// quicRetries counts the Retry packets sent to new QUIC connections
	// (one per Initial packet without a token); quicEvicted the idle ones closed at the cap to make room,
	// quicRefused the new ones closed because every one was busy.
	quicRetries, quicEvicted, quicRefused prometheus.Counter
	// quicOpen are the QUIC connections holding a slot of the cap,
	// quicHandshakes those not yet through their handshake.
	quicOpen, quicHandshakes prometheus.Gauge
	// compressExhausted counts answers sent uncompressed because every
	// encoder of limits.compress_encoders was in use.
	compressExhausted prometheus.Counter
	// memoryReleases counts the quiet spells after which the edge returned
	// a burst's memory to the system (memrelease.go).
	memoryReleases prometheus.Counter
	// staticCompressions counts static files compressed (to be kept), by
	// encoding; staticBusy the static requests refused for want of a
	// file descriptor (limits.static_files).
	staticCompressions *prometheus.CounterVec
	staticBusy         prometheus.Counter
	// upstreamUp is the last thing the proxy saw of the upstream when
	// nothing is supervised: a response (up) or a failed connection (down).
	upstreamUp atomic.Bool
}

func newMetrics(version string) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wellknownd_http_requests_total",
		Help: "HTTP requests answered, by host (a name from hosts, or unknown), route class and status code.",
	}, []string{"host", "route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wellknownd_http_request_duration_seconds",
		Help: "Time from request to the handler's return, by host and route class; long-polls included.",
		// From a cached document (~50µs) to a /sync long-poll (30-90 s).
		Buckets: []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120},
	}, []string{"host", "route"})
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wellknownd_http_requests_in_flight",
		Help: "Requests being answered now.",
	}, func() float64 { return float64(m.inflight.Load()) })
	m.proxyErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wellknownd_proxy_errors_total",
		Help: "Proxied requests that failed at the edge, by kind: refused, timeout, too_large, canceled, client_body (the client's body broke or stalled), busy (no upstream connection free in time), buffers (no room to buffer the request body), other.",
	}, []string{"kind"})
	m.certEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wellknownd_certificate_events_total",
		Help: "Certificate operations, by event: obtained, renewed, failed.",
	}, []string{"event"})
	protocols := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wellknownd_http_requests_by_protocol_total",
		Help: "HTTP requests by protocol: h1 (HTTP/1.x), h2, h3 (over QUIC).",
	}, []string{"protocol"})
	m.memoryReleases = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wellknownd_memory_releases_total",
		Help: "Times the edge, quiet after a burst of requests, collected and returned the memory the burst took to the system.",
	})
	m.compressExhausted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wellknownd_compress_budget_exhausted_total",
		Help: "Answers sent uncompressed because every encoder (limits.compress_encoders) was in use.",
	})
	m.staticCompressions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wellknownd_static_compress_total",
		Help: "Static files compressed to be kept in memory (limits.static_cache), by encoding: each version of a file once while it stays cached.",
	}, []string{"encoding"})
	m.staticBusy = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wellknownd_static_busy_total",
		Help: "Static requests answered 503 because every file descriptor for static files (limits.static_files) was in use.",
	})
	for _, e := range []string{encZstd, encGzip} {
		m.staticCompressions.WithLabelValues(e)
	}
	for i, p := range []string{"h1", "h2", "h3"} {
		m.byProtocol[i] = protocols.WithLabelValues(p)
	}
	for _, k := range []string{"refused", "timeout", "too_large", "canceled", "client_body", "busy", "buffers", "other"} {
		m.proxyErrors.WithLabelValues(k)
	}
	for _, e := range []string{"obtained", "renewed", "failed"} {
		m.certEvents.WithLabelValues(e)
	}
	m.quicRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wellknownd_quic_retries_total",
		Help: "Initial packets of new QUIC connections answered with a Retry (a ClientHello may take two packets), for the client to prove its source address, because handshakes in progress or connections held were high.",
	})
	m.quicEvicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wellknownd_quic_connections_evicted_total",
		Help: "QUIC connections closed at the cap (limits.max_conns) to make room, each the one idle longest.",
	})
	m.quicRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wellknownd_quic_connections_refused_total",
		Help: "New QUIC connections refused at the cap because every open one had a request in flight.",
	})
	m.quicOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wellknownd_quic_connections_open",
		Help: "QUIC connections open on the HTTP/3 listeners, of at most limits.max_conns.",
	})
	m.quicHandshakes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wellknownd_quic_handshakes",
		Help: "QUIC connections whose handshake is in progress.",
	})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wellknownd_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version"})
	buildInfo.WithLabelValues(version).Set(1)
	// Not known to be up until the probe or a proxied request says so.
	m.upstreamUp.Store(false)
	m.reg.MustRegister(m.requests, m.duration, inflight, m.proxyErrors, m.certEvents, buildInfo, protocols,
		m.quicRetries, m.quicEvicted, m.quicRefused, m.quicOpen, m.quicHandshakes,
		m.compressExhausted, m.staticCompressions, m.staticBusy, m.memoryReleases,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchBuffers exposes what the buffers of bodies and answers hold now,
// read from the budget's counters when scraped: nothing on the hot path.
func (m *metrics) watchBuffers(b *bufferBudget) {
	for _, g := range []struct {
		name, help string
		q          *quota
	}{
		{"wellknownd_buffer_memory_bytes", "Memory held by request bodies and answers buffered at the edge (limits.buffer_memory).", &b.memory},
		{"wellknownd_buffer_disk_bytes", "Disk taken by temporary files of request bodies and answers buffered at the edge (limits.buffer_disk).", &b.disk},
		{"wellknownd_buffer_files", "Temporary files open for request bodies and answers buffered at the edge.", &b.files},
	} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return float64(g.q.held.Load()) }))
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// hostMetrics are a host's metrics with the host label already bound, so
// that a request costs one label lookup (its status code), not three.
type hostMetrics struct {
	requests [numRouteClasses]*prometheus.CounterVec // curried with host
	duration [numRouteClasses]prometheus.Observer
	// counters are requests' children by status (100-599), each looked up
	// in the vector once: a lookup hashes the labels and takes the
	// vector's lock, which every request on every core would share.
	counters [numRouteClasses][500]atomic.Pointer[prometheus.Counter]
}

func (m *metrics) forHost(host string) *hostMetrics {
	hm := &hostMetrics{}
	for i, c := range routeClasses {
		hm.requests[i] = m.requests.MustCurryWith(prometheus.Labels{"host": host, "route": c})
		hm.duration[i] = m.duration.WithLabelValues(host, c)
	}
	return hm
}

// classOf is the route class of a path.
func classOf(path string) routeClass {
	switch {
	case strings.HasPrefix(path, wellKnownPrefix):
		return classWellKnown
	case isFederationPath(path):
		return classFederation
	case strings.HasPrefix(path, "/_matrix/") || strings.HasPrefix(path, "/_synapse/client/"):
		return classClient
	}
	return classOther
}

// codes are status codes as label values, made once.
var codes = func() (c [600]string) {
	for i := range c {
		c[i] = strconv.Itoa(i)
	}
	return
}()

func codeLabel(status int) string {
	if status >= 0 && status < len(codes) {
		return codes[status]
	}
	return strconv.Itoa(status)
}

// statusRecorder remembers the status a handler wrote. It unwraps to the
// real writer, so http.ResponseController (used by the proxy to flush and
// to hijack for upgrades) reaches through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	// stall bounds each write and flush of an HTTP/2 or HTTP/3 stream;
	// nil on HTTP/1.
	stall *stallWatch
}

var recorders = sync.Pool{New: func() any { return new(statusRecorder) }}

func (r *statusRecorder) WriteHeader(code int) {
	// An informational answer (100 Continue to an upload, 103 Early Hints)
	// comes before the real one; only 101 Switching Protocols is final.
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.stall != nil {
		r.stall.arm()
		defer r.stall.disarm()
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// FlushError flushes the stream under the same bound as a write: a flush
// waits for the client's flow-control window as a write does.
func (r *statusRecorder) FlushError() error {
	if r.stall != nil {
		r.stall.arm()
		defer r.stall.disarm()
	}
	switch f := r.ResponseWriter.(type) {
	case interface{ FlushError() error }: // net/http's, HTTP/2's and HTTP/3's own
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.ErrNotSupported
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe records one answered request.
func (hm *hostMetrics) observe(class routeClass, status int, took time.Duration) {
	hm.counter(class, status).Inc()
	hm.duration[class].Observe(took.Seconds())
}

func (hm *hostMetrics) counter(class routeClass, status int) prometheus.Counter {
	if status < 100 || status >= 600 {
		return hm.requests[class].WithLabelValues(codeLabel(status))
	}
	slot := &hm.counters[class][status-100]
	if c := slot.Load(); c != nil {
		return *c
	}
	c := hm.requests[class].WithLabelValues(codeLabel(status))
	slot.Store(&c)
	return c
}
