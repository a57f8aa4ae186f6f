package slidingsync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Path is the MSC4186 endpoint the edge answers.
const Path = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// UnstableFeature is the /versions unstable_features key that tells
// clients (Element X, the Rust SDK, matrix-js-sdk) the endpoint is served.
const UnstableFeature = "org.matrix.simplified_msc3575"

// Config is what a Service needs, resolved from the edge's configuration.
type Config struct {
	// Upstream is the homeserver's client API (Dendrite's HTTP listener).
	Upstream *url.URL
	// Transport carries the polls, whoami and /messages calls there; nil
	// is a transport of the service's own.
	Transport http.RoundTripper
	// SQLitePath is the embedded store's file; used when PostgresURL is "".
	SQLitePath string
	// PostgresURL, when set, is a PostgreSQL database shared by several
	// edges (postgres://user:pass@host/db).
	PostgresURL string
	// IdleTimeout stops a device's poller this long after its last
	// sliding-sync request.
	IdleTimeout time.Duration
	// EdgeID names this edge in the poller lease, unique among edges
	// sharing a store.
	EdgeID string
	Logger *slog.Logger
}

// Service answers MSC4186 requests and runs the pollers behind them.
type Service struct {
	st   *store
	log  *slog.Logger
	idle time.Duration
	edge string

	// ctx ends when the service closes: pollers and waiting requests stop.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	upMu      sync.RWMutex
	upstream  *url.URL
	transport http.RoundTripper

	mu      sync.Mutex
	devices map[int64]*device
	tokens  map[[32]byte]*tokenEntry

	metrics *metrics
}

// Open opens (creating or migrating) the store and returns a Service
// ready to answer; pollers start as devices ask.
func Open(cfg Config) (*Service, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Upstream == nil {
		return nil, errors.New("sliding sync needs the homeserver's address")
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := openStore(ctx, cfg.SQLitePath, cfg.PostgresURL)
	if err != nil {
		cancel()
		return nil, err
	}
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = 10 * time.Minute
	}
	edge := cfg.EdgeID
	if edge == "" {
		edge = randomID()
	}
	s := &Service{
		st: st, log: log, idle: idle, edge: edge, ctx: ctx, cancel: cancel,
		devices: map[int64]*device{}, tokens: map[[32]byte]*tokenEntry{},
		metrics: newMetrics(),
	}
	s.Reconfigure(cfg.Upstream, cfg.Transport)
	s.wg.Add(1)
	go s.sweep()
	return s, nil
}

// keepIdle is how long a device that stopped syncing keeps its data: a
// phone left in a drawer for a while continues without a first sync; one
// gone for good stops costing disk.
const keepIdle = 30 * 24 * time.Hour

// sweep forgets devices idle for longer than keepIdle, hourly.
func (s *Service) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		var devs []int64
		var err error
		if s.st.ready.Load() { // a store nobody has used has nobody to forget
			devs, err = s.st.stale(s.ctx, time.Now().Add(-keepIdle))
		}
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("sliding sync: finding idle devices", "err", err)
		}
		for _, dev := range devs {
			s.mu.Lock()
			active := s.devices[dev] != nil
			s.mu.Unlock()
			if !active {
				if err := s.st.forget(s.ctx, dev); err != nil && s.ctx.Err() == nil {
					s.log.Warn("sliding sync: forgetting an idle device", "err", err)
				}
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Reconfigure points new polls and requests at another homeserver
// address (a reload that changed upstream.url); running pollers move on
// their next poll.
func (s *Service) Reconfigure(upstream *url.URL, transport http.RoundTripper) {
	if transport == nil {
		// Long-polls of their own: one per active device, never queued
		// behind (or holding up) the proxy's connections to the homeserver.
		transport = &http.Transport{
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 0,
			DisableCompression:    false,
		}
	}
	s.upMu.Lock()
	s.upstream, s.transport = upstream, transport
	s.upMu.Unlock()
}

// Close stops every poller (their positions are already stored) and
// closes the store.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.st.close()
}

func randomID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP answers POST Path.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := s.serve(w, r)
	s.metrics.requests.WithLabelValues(code).Inc()
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) string {
	fail := func(e *matrixError) string {
		writeError(w, e)
		return e.errcode
	}
	if r.Method != http.MethodPost {
		return fail(errorf(http.StatusMethodNotAllowed, codeUnrecognized, "Use POST"))
	}
	token := accessToken(r)
	if token == "" {
		return fail(errorf(http.StatusUnauthorized, codeMissingToken, "Missing access token"))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fail(errorf(http.StatusBadRequest, codeUnknown, "Reading the body: "+err.Error()))
	}
	if len(body) > maxBody {
		return fail(errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "A sliding sync request is at most 1 MiB"))
	}
	req, merr := parseRequest(body)
	if merr != nil {
		return fail(merr)
	}
	q := r.URL.Query()
	timeout := time.Duration(0)
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.Atoi(t)
		if err != nil || ms < 0 {
			return fail(errorf(http.StatusBadRequest, codeInvalidParam, "timeout is not a number of milliseconds"))
		}
		timeout = time.Duration(min(ms, maxTimeoutMS)) * time.Millisecond
	}
	d, merr := s.authenticate(r.Context(), token)
	if merr != nil {
		return fail(merr)
	}
	resp, merr := s.sync(r.Context(), d, req, q.Get("pos"), timeout)
	if merr != nil {
		return fail(merr)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return fail(errorf(http.StatusInternalServerError, codeUnknown, "Encoding the answer failed"))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
	return "ok"
}

// accessToken is the request's token: the Authorization header, else the
// deprecated access_token query parameter that older clients still send.
func accessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("access_token")
}

// sync answers one request: at once on a new connection, else as soon as
// something is new for the client or timeout has passed.
func (s *Service) sync(ctx context.Context, d *device, req *request, pos string, timeout time.Duration) (*response, *matrixError) {
	// A logout ends the device's poller, which deletes what was stored for
	// it: a read that finds it gone meanwhile is the logout, not a fault.
	internal := func(what string, err error) *matrixError {
		if re := d.revokedErr(); re != nil {
			return re
		}
		return s.internal(what, err)
	}
	var prev *connState
	var gen string
	var n int64
	if pos != "" {
		g, num, ok := parsePos(pos)
		if !ok {
			return nil, errorf(http.StatusBadRequest, codeUnknown, "Invalid stream token")
		}
		storedGen, raw, err := s.st.connection(ctx, d.dev, req.ConnID, num)
		if err != nil {
			return nil, internal("reading the connection", err)
		}
		if raw == nil || storedGen != g {
			if re := d.revokedErr(); re != nil {
				return nil, re
			}
			// Another device's position, one long forgotten, or one from
			// before this connection restarted: the client starts over.
			return nil, errorf(http.StatusBadRequest, codeUnknownPos, "Unknown position")
		}
		prev = &connState{}
		if err := json.Unmarshal(raw, prev); err != nil {
			return nil, errorf(http.StatusBadRequest, codeUnknownPos, "Unknown position")
		}
		gen, n = g, num
	} else {
		gen, n = randomID(), 0
	}

	if err := d.waitFirstSync(ctx, s.ctx); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	woken := false
	for {
		// Read the counters and the rooms as of one apply first: whatever
		// the poller stores while this answer is built is left for the
		// next one, never sent twice.
		wake := d.changes()
		v, err := s.st.view(ctx, d.dev)
		if err != nil {
			return nil, internal("reading the device", err)
		}
		resp, next, changed, err := s.answer(ctx, d, req, prev, v)
		if err != nil {
			var me *matrixError
			if errors.As(err, &me) {
				return nil, me
			}
			return nil, internal("building the answer", err)
		}
		if prev == nil || changed || !time.Now().Before(deadline) {
			if prev != nil && !changed {
				// Nothing new: the client keeps its position.
				resp.Pos = pos
				return resp, nil
			}
			raw, _ := json.Marshal(next)
			if err := s.st.saveConnection(ctx, d.dev, req.ConnID, n+1, gen, raw, time.Now().UnixMilli()); err != nil {
				return nil, internal("saving the connection", err)
			}
			resp.Pos = gen + "_" + strconv.FormatInt(n+1, 10)
			if woken {
				// How long a waiting client took to hear of what the
				// poller stored: the wake-up figure.
				s.metrics.wakeup.Observe(time.Since(d.lastApply()).Seconds())
			}
			return resp, nil
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
			t.Stop()
			woken = true
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, errorf(http.StatusServiceUnavailable, codeUnknown, "The request ended")
		case <-s.ctx.Done():
			t.Stop()
			return nil, errorf(http.StatusServiceUnavailable, codeUnknown, "The server is stopping")
		}
		if err := d.revokedErr(); err != nil {
			return nil, err
		}
	}
}

// parsePos reads a position this service gave: GEN_N.
func parsePos(pos string) (gen string, n int64, ok bool) {
	i := strings.LastIndexByte(pos, '_')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(pos[i+1:], 10, 64)
	if err != nil || n <= 0 {
		return "", 0, false
	}
	return pos[:i], n, true
}

func (s *Service) internal(what string, err error) *matrixError {
	if s.ctx.Err() != nil {
		return errorf(http.StatusServiceUnavailable, codeUnknown, "The server is stopping")
	}
	s.log.Error("sliding sync: "+what, "err", err)
	return errorf(http.StatusInternalServerError, codeUnknown, fmt.Sprintf("Sliding sync failed %s", what))
}

// tokenHash keys the token cache: the token itself is kept only by the
// device's poller, in memory.
func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// pollerCount is how many devices this edge polls the homeserver for.
func (s *Service) pollerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.devices {
		d.mu.Lock()
		if d.polling && d.owned {
			n++
		}
		d.mu.Unlock()
	}
	return n
}
