package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/slidingsync"
)

// Simplified Sliding Sync (MSC4186) at the edge. Element X syncs only
// through POST slidingsync.Path, which Dendrite does not serve, and looks
// for it in /versions' unstable_features. The edge answers that path with
// a slidingsync.Service of its own (which polls the homeserver's /sync per
// device) and adds the feature to the homeserver's /versions answer,
// unless the homeserver advertises it itself (Synapse): then both pass
// through untouched, and the homeserver serves its own.
//
// Where it sits on the request path: after the gate, instead of the
// proxy. The gate gives it what every client request gets before an
// upstream is dialled (CORS preflights, the stream rate, 503 while a
// supervised homeserver starts, the body read whole within max_body and
// the buffers' budget), and the pipeline around it the JSON errors,
// HSTS, compression of the answer, the stall watch (send timeout), the
// request metrics and log. What it skips is the proxy's slotTransport: a
// sliding-sync request long-polls for up to its timeout while the Service
// waits on its pollers, and taking an upstream slot for that would let
// Element X's connections starve every other client's requests of the
// homeserver's connections (limits.upstream_conns). The Service reaches
// the homeserver with a transport of its own, one poll per device rather
// than one per request.

// versionsPath is the homeserver's /versions, which the edge amends.
const versionsPath = "/_matrix/client/versions"

// maxVersionsBody bounds the /versions answer the edge reads to amend or
// learn from (Synapse's is about 2 KiB); a longer one passes unchanged.
const maxVersionsBody = 64 << 10

// pgOpenTries is how often a PostgreSQL store is tried at open (250 ms,
// then 500 ms apart).
const pgOpenTries = 3

// versionsFetchTimeout bounds the one /versions the edge asks for itself,
// when a sliding-sync request comes before any /versions answer was seen.
const versionsFetchTimeout = 5 * time.Second

// versionsTagSuffix marks the ETag of an amended /versions: another
// representation of the homeserver's answer, another tag ("abc" becomes
// "abc-msc4186"), taken off again before the homeserver revalidates it.
const versionsTagSuffix = "-msc4186"

// What the edge knows of the homeserver's own MSC4186, from the last
// /versions answer it saw.
const (
	nativeUnknown int32 = iota
	nativeNo
	nativeYes
)

// slidingSync is the edge's side of MSC4186: the Service while one is
// open, and what the homeserver's /versions said. It lives as long as
// the Server; reloads reopen the Service inside it.
type slidingSync struct {
	log *slog.Logger
	// edgeID names this edge in the store's poller leases.
	edgeID string
	// transport is the Service's own connection pool to the homeserver,
	// outside the proxy's slots; its pollers' long-polls, without a body,
	// hold a connection each and no goroutine of the transport's
	// (h1Transport). probe is the edge's, for the /versions it fetches
	// itself.
	transport *h1Transport
	probe     http.RoundTripper
	// target is the homeserver's client API in force.
	target func() *url.URL

	// cur is the open Service; nil when sliding_sync is off or Run is
	// not running. Requests load it once each.
	cur atomic.Pointer[ssService]
	// native is nativeUnknown, nativeNo or nativeYes.
	native atomic.Int32
	// badVersions: an unparsable /versions was logged (once).
	badVersions atomic.Bool
	// amended is the last /versions amended: the homeserver answers the
	// same bytes until it is upgraded, and clients ask often.
	amended atomic.Pointer[amendedVersions]

	// mu guards running and fetching, and orders open, reload and close.
	mu sync.Mutex
	// running: Run is between its start and its end, when a Service
	// may be open.
	running bool
	// fetching is closed when the /versions fetch under way ends.
	fetching chan struct{}
	// retiring are the replaced Services still draining.
	retiring sync.WaitGroup
}

// amendedVersions is one /versions answer of the homeserver and the same
// with the feature added.
type amendedVersions struct{ in, out []byte }

// ssService is one open Service and the requests it is answering, so
// that a reload can close a replaced one once they are done.
type ssService struct {
	svc *slidingsync.Service
	// opened is the configuration it was opened with.
	opened config.SlidingSync
	mu     sync.Mutex
	active int
	// retired: no new request may start; drained is closed when the
	// last active one ends after that.
	retired bool
	drained chan struct{}
}

func newSlidingSync(log *slog.Logger, l limits, probe http.RoundTripper, target func() *url.URL) *slidingSync {
	t := newTransport()
	t.MaxConnsPerHost = l.upstreamConns
	return &slidingSync{log: log.With("component", "sliding_sync"), edgeID: edgeID(), transport: newH1Transport(t), probe: probe, target: target}
}

// edgeID is unique among the edges (and the Servers of one test process)
// that share a store: the host, the process, and a random part.
func edgeID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "edge"
	}
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// start opens the Service for cfg when sliding_sync is on: what Run does
// before it listens, so that a store that cannot be opened stops the
// daemon with its reason instead of failing each request.
func (ss *slidingSync) start(cfg *config.Config) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.running = true
	if !cfg.SlidingSync.Enabled {
		return nil
	}
	svc, err := ss.open(cfg)
	if err != nil {
		ss.running = false
		return err
	}
	ss.cur.Store(svc)
	return nil
}

func (ss *slidingSync) open(cfg *config.Config) (*ssService, error) {
	c := cfg.SlidingSync
	if c.SQLitePath != "" {
		// The store's directory, like the certificates', is this user's
		// alone: the database holds access tokens.
		if err := os.MkdirAll(filepath.Dir(c.SQLitePath), 0o700); err != nil {
			return nil, fmt.Errorf("sliding_sync.store: %w", err)
		}
	}
	scfg := slidingsync.Config{
		Upstream: cfg.Upstream.Target, Transport: ss.transport,
		SQLitePath: c.SQLitePath, PostgresURL: c.PostgresURL,
		IdleTimeout: c.IdleTimeout, EdgeID: ss.edgeID, Logger: ss.log,
	}
	svc, err := slidingsync.Open(scfg)
	for try := 1; err != nil && c.PostgresURL != "" && try < pgOpenTries; try++ {
		// Edges sharing a database start together (a deploy, a host
		// reboot), and PostgreSQL fails one of two concurrent
		// CREATE TABLE IF NOT EXISTS with a unique violation; the
		// database itself may be restarting. A moment later the other
		// edge's schema is there.
		ss.log.Warn("opening the sliding sync store; trying again", "store", storeName(c), "try", try, "err", err)
		time.Sleep(time.Duration(try) * 250 * time.Millisecond)
		svc, err = slidingsync.Open(scfg)
	}
	if err != nil {
		return nil, fmt.Errorf("sliding_sync: opening the store %s: %w", storeName(c), err)
	}
	ss.log.Info("sliding sync served at the edge", "store", storeName(c), "edge_id", ss.edgeID)
	return &ssService{svc: svc, opened: c, drained: make(chan struct{})}, nil
}

// storeName is the store for a log line or an error: never the password.
func storeName(c config.SlidingSync) string {
	if c.PostgresURL == "" {
		return c.SQLitePath
	}
	if u, err := url.Parse(c.PostgresURL); err == nil {
		return u.Redacted()
	}
	return "postgres"
}

// reload prepares the change from old to cfg. A Service that must be
// reopened (enabled, the store or the idle timeout changed) is opened
// here, before anything is swapped: if that fails the reload fails, and
// the old configuration, Service included, goes on serving. The returned
// apply is called once the new site is in place; it swaps the Services
// and lets the old one finish its requests before it is closed.
func (ss *slidingSync) reload(old, cfg *config.Config, drain time.Duration) (apply func(), err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	newTarget := old.Upstream.Target.String() != cfg.Upstream.Target.String()
	if !ss.running {
		return func() {
			if newTarget {
				ss.native.Store(nativeUnknown)
			}
		}, nil
	}
	cur := ss.cur.Load()
	var next *ssService
	reopen := cur == nil && cfg.SlidingSync.Enabled || cur != nil && cur.opened != cfg.SlidingSync
	if reopen && cfg.SlidingSync.Enabled {
		if next, err = ss.open(cfg); err != nil {
			return nil, err
		}
	}
	return func() {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if newTarget {
			// Another homeserver: what the old one advertised says
			// nothing of it.
			ss.native.Store(nativeUnknown)
		}
		if !ss.running {
			// Run ended between the two steps: stop closed the old one.
			if next != nil {
				if err := next.svc.Close(); err != nil {
					ss.log.Error("closing the sliding sync store", "store", storeName(next.opened), "err", err)
				}
			}
			return
		}
		if !reopen {
			if cur != nil && newTarget {
				cur.svc.Reconfigure(cfg.Upstream.Target, ss.transport)
			}
			return
		}
		if cur == nil {
			// Turned on: what was learnt while it was off may be old
			// (nothing amended /versions meanwhile); ask again.
			ss.native.Store(nativeUnknown)
		}
		ss.cur.Store(next)
		if next == nil {
			ss.log.Info("sliding sync off: the homeserver answers the path and /versions")
		}
		if cur != nil {
			ss.retire(cur, drain)
		}
	}, nil
}

// retire closes s once the requests it is answering have ended, or after
// drain (shutdown_timeout), whichever is first: a long-poll in progress
// ends with its own answer rather than an error from a closed store, and
// a stuck one cannot keep the old store open for ever.
func (ss *slidingSync) retire(s *ssService, drain time.Duration) {
	s.mu.Lock()
	s.retired = true
	if s.active == 0 {
		close(s.drained)
	}
	s.mu.Unlock()
	ss.retiring.Go(func() {
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-s.drained:
		case <-t.C:
			ss.log.Warn("sliding sync requests still running after the drain timeout; closing the replaced store under them", "store", storeName(s.opened))
		}
		if err := s.svc.Close(); err != nil {
			ss.log.Error("closing the replaced sliding sync store", "store", storeName(s.opened), "err", err)
		}
	})
}

// stop closes the Service once Run's listeners have drained, and waits
// for replaced ones still closing.
func (ss *slidingSync) stop() {
	ss.mu.Lock()
	ss.running = false
	cur := ss.cur.Swap(nil)
	ss.mu.Unlock()
	if cur != nil {
		if err := cur.svc.Close(); err != nil {
			ss.log.Error("closing the sliding sync store", "store", storeName(cur.opened), "err", err)
		}
	}
	ss.retiring.Wait()
	ss.transport.CloseIdleConnections()
}

// acquire returns the open Service for one request, counted until the
// returned release is called; nil when none is open.
func (ss *slidingSync) acquire() (*ssService, func()) {
	s := ss.cur.Load()
	if s == nil {
		return nil, nil
	}
	s.mu.Lock()
	if s.retired {
		// Replaced between the load and now: take the new one.
		s.mu.Unlock()
		return ss.acquire()
	}
	s.active++
	s.mu.Unlock()
	return s, func() {
		s.mu.Lock()
		s.active--
		if s.retired && s.active == 0 {
			close(s.drained)
		}
		s.mu.Unlock()
	}
}

// serves reports whether the edge answers slidingsync.Path itself: a
// Service is open and the homeserver does not advertise the feature.
// Before any /versions answer has been seen, it asks the homeserver once
// (the requests that come meanwhile wait for the same answer) rather than
// guess: a Synapse behind the edge must keep its own sliding sync, whose
// positions the edge's would not know.
func (ss *slidingSync) serves(ctx context.Context) bool {
	if ss.cur.Load() == nil {
		return false
	}
	switch ss.native.Load() {
	case nativeNo:
		return true
	case nativeYes:
		return false
	}
	ss.mu.Lock()
	f := ss.fetching
	if f == nil {
		f = make(chan struct{})
		ss.fetching = f
		go ss.fetchVersions(f)
	}
	ss.mu.Unlock()
	select {
	case <-f:
	case <-ctx.Done():
	}
	// Still unknown (the homeserver did not answer in time): the edge
	// serves it, as for Dendrite, which is what it fronts; the next
	// request asks again.
	return ss.native.Load() != nativeYes
}

// fetchVersions asks the homeserver for /versions, learns from the
// answer, and closes done.
func (ss *slidingSync) fetchVersions(done chan struct{}) {
	defer func() {
		ss.mu.Lock()
		ss.fetching = nil
		ss.mu.Unlock()
		close(done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), versionsFetchTimeout)
	defer cancel()
	u := strings.TrimSuffix(ss.target().String(), "/") + versionsPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return
	}
	resp, err := ss.probe.RoundTrip(req)
	if err != nil {
		ss.log.Warn("the homeserver's /versions could not be had; sliding sync is answered at the edge meanwhile", "url", u, "err", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ss.log.Warn("the homeserver's /versions failed; sliding sync is answered at the edge meanwhile", "url", u, "status", resp.StatusCode)
		return
	}
	ss.observeBody(resp.Body)
}

// observeBody learns from a /versions answer's body (the probe's).
func (ss *slidingSync) observeBody(r io.Reader) {
	b, err := io.ReadAll(io.LimitReader(r, maxVersionsBody+1))
	if err == nil && len(b) <= maxVersionsBody {
		ss.observe(b)
	}
}

// observe learns from a /versions answer whether the homeserver serves
// MSC4186 itself, and says so when that changes. An answer that is not
// JSON teaches nothing.
func (ss *slidingSync) observe(versions []byte) {
	if !json.Valid(versions) {
		return
	}
	n := nativeNo
	if slidingsync.AdvertisedBy(versions) {
		n = nativeYes
	}
	ss.setNative(n)
}

// setNative records what the homeserver said, and says so when it changed.
func (ss *slidingSync) setNative(n int32) {
	if was := ss.native.Swap(n); was != n {
		if n == nativeYes {
			ss.log.Info("the homeserver serves sliding sync (MSC4186) itself; the edge passes it through")
		} else if was == nativeYes {
			ss.log.Info("the homeserver no longer advertises sliding sync (MSC4186); the edge answers it")
		}
	}
}

// handler answers slidingsync.Path from the open Service, behind the
// gate; if the Service was turned off by a reload since routing chose
// it, upstream answers instead.
func (ss *slidingSync) handler(upstream http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, release := ss.acquire()
		if s == nil {
			upstream.ServeHTTP(w, r)
			return
		}
		defer release()
		// What the proxy puts on every homeserver answer: a browser
		// client (Element Web) reads errors and answers alike.
		setCORS(w.Header(), corsClientAPI)
		s.svc.ServeHTTP(w, r)
	})
}

// versionsProxy is the homeserver's proxy for GET /versions, amending the
// answer while the edge serves sliding sync, and learning from every
// answer whether the homeserver serves it itself.
func (ss *slidingSync) versionsProxy(p *upstreamProxy) http.Handler {
	rp := p.rp
	rewrite, modify := rp.Rewrite, rp.ModifyResponse
	rp.Rewrite = func(pr *httputil.ProxyRequest) {
		rewrite(pr)
		// Plain JSON to amend: the edge compresses the answer itself.
		pr.Out.Header.Del("Accept-Encoding")
		if ss.amends() {
			// Only the tags of amended answers can be revalidated with
			// the homeserver: its 304 for a tag the client holds of an
			// unamended answer would keep the feature from the client.
			for _, k := range []string{"If-None-Match", "If-Match"} {
				if v := pr.Out.Header.Get(k); v != "" {
					if v = amendedTags(v); v != "" {
						pr.Out.Header.Set(k, v)
					} else {
						pr.Out.Header.Del(k)
					}
				}
			}
		}
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		if err := modify(resp); err != nil {
			return err
		}
		return ss.amendVersions(resp)
	}
	return rp
}

// amends reports whether /versions answers are amended now: a Service is
// open, and the homeserver has not said it serves the feature itself.
func (ss *slidingSync) amends() bool {
	return ss.cur.Load() != nil && ss.native.Load() != nativeYes
}

// amendVersions adds the feature to a /versions answer, with the length
// and tag of the new body, when the edge serves it; it learns from the
// answer either way. Anything it cannot read passes unchanged.
func (ss *slidingSync) amendVersions(resp *http.Response) error {
	if ss.cur.Load() == nil {
		// Off (or not running): untouched, unread. The probe and the
		// fetch before the first request still learn what the
		// homeserver says.
		return nil
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		if ss.amends() {
			if et := resp.Header.Get("ETag"); et != "" {
				resp.Header.Set("ETag", amendedTag(et))
			}
		}
		return nil
	case http.StatusOK:
	default:
		return nil
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		// Asked for none; a homeserver that encodes anyway is passed on.
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxVersionsBody+1))
	if err != nil {
		resp.Body.Close()
		return fmt.Errorf("reading /versions: %w", err)
	}
	if len(body) > maxVersionsBody {
		ss.logBadVersions("longer than 64 KiB")
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil
	}
	// Whole now: the upstream's buffer or spool goes back at once.
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var amended []byte
	if last := ss.amended.Load(); last != nil && bytes.Equal(last.in, body) {
		// Learnt and amended before: the homeserver does not serve it.
		ss.setNative(nativeNo)
		amended = last.out
	} else {
		ss.observe(body)
		if !ss.amends() {
			return nil
		}
		if amended, err = slidingsync.AddToVersions(body); err != nil {
			ss.logBadVersions(err.Error())
			return nil
		}
		ss.amended.Store(&amendedVersions{in: body, out: amended})
	}
	resp.Body = io.NopCloser(bytes.NewReader(amended))
	resp.ContentLength = int64(len(amended))
	resp.TransferEncoding = nil
	resp.Header["Content-Length"] = []string{strconv.Itoa(len(amended))}
	if et := resp.Header.Get("ETag"); et != "" {
		resp.Header.Set("ETag", amendedTag(et))
	}
	return nil
}

func (ss *slidingSync) logBadVersions(why string) {
	if !ss.badVersions.Swap(true) {
		ss.log.Warn("the homeserver's /versions answer cannot be amended; it is passed on without sliding sync (said once)", "why", why)
	}
}

// amendedTag is the ETag of the amended answer whose homeserver answer
// had et: "abc" becomes "abc-msc4186", W/"abc" W/"abc-msc4186".
func amendedTag(et string) string {
	i := strings.LastIndexByte(et, '"')
	if i <= 0 {
		return et
	}
	return et[:i] + versionsTagSuffix + et[i:]
}

// amendedTags keeps, of an If-None-Match or If-Match list, the tags of
// amended answers, as the homeserver named them; "" when none is left.
func amendedTags(v string) string {
	if strings.TrimSpace(v) == "*" {
		return v
	}
	var out []string
	for t := range strings.SplitSeq(v, ",") {
		t = strings.TrimSpace(t)
		if strings.HasSuffix(t, versionsTagSuffix+`"`) {
			out = append(out, t[:len(t)-len(versionsTagSuffix)-1]+`"`)
		}
	}
	return strings.Join(out, ", ")
}

// serveSlidingSync routes the two paths sliding sync changes, and
// reports whether it did; the rest of /_matrix/ is proxied as before.
func (m *matrixRoutes) serveSlidingSync(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case slidingsync.Path:
		// A preflight is the gate's to answer, whoever serves the path.
		if r.Method != http.MethodOptions && m.ss.serves(r.Context()) {
			m.edgeSlidingSync.ServeHTTP(w, r)
			return true
		}
	case versionsPath:
		if r.Method == http.MethodGet {
			m.edgeVersions.ServeHTTP(w, r)
			return true
		}
	}
	return false
}

// initSlidingSync builds the two handlers behind the gate, as the proxy's.
func (m *matrixRoutes) initSlidingSync(ss *slidingSync, vp *upstreamProxy) {
	if ss == nil {
		return
	}
	m.ss = ss
	m.edgeSlidingSync = m.gate.wrap(ss.handler(m.client))
	m.edgeVersions = m.gate.wrap(ss.versionsProxy(vp))
}

// ssCollector puts the Service's metrics beside the edge's, whichever
// Service is open, and says how sliding sync is served. It describes
// nothing (an unchecked collector): the Service's metrics are its own,
// and a reload may replace it.
type ssCollector struct {
	ss   *slidingSync
	mode *prometheus.Desc
}

func newSSCollector(ss *slidingSync) *ssCollector {
	return &ssCollector{ss: ss, mode: prometheus.NewDesc("wellknownd_sliding_sync_mode",
		"1 for how MSC4186 sliding sync is served now, 0 for the others: edge (the edge answers it and advertises it in /versions), homeserver (the homeserver advertises it itself; passed through), off (sliding_sync.enabled false).",
		[]string{"mode"}, nil)}
}

func (c *ssCollector) Describe(chan<- *prometheus.Desc) {}

func (c *ssCollector) Collect(ch chan<- prometheus.Metric) {
	mode := "off"
	if s := c.ss.cur.Load(); s != nil {
		mode = "edge"
		if c.ss.native.Load() == nativeYes {
			mode = "homeserver"
		}
		s.svc.Collect(ch)
	}
	for _, m := range []string{"edge", "homeserver", "off"} {
		v := 0.0
		if m == mode {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.mode, prometheus.GaugeValue, v, m)
	}
}
