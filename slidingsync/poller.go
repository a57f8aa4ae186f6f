package slidingsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

const (
	// pollTimeout is the v2 long-poll: the homeserver answers at once
	// when something happens, so it bounds only how often an idle device
	// is checked for idleness and its lease renewed.
	pollTimeout = 30 * time.Second
	// leaseFor is how long an edge's claim on a device outlives its last
	// renewal: another edge takes over this long after one dies.
	leaseFor = 90 * time.Second
	// maxPendingToDevice pauses a poller whose device does not take its
	// to-device messages: the homeserver keeps the rest until then.
	maxPendingToDevice = 5000
	// initialTimeline and liveTimeline are the v2 filter's timeline
	// limits: a first screen for every room on the first sync, and room
	// for a burst between two polls after it.
	initialTimeline = 10
	liveTimeline    = 50
)

// v2Filter is the filter the poller syncs with: full state (lists filter
// on it and required_state asks for it), no presence (sliding sync does
// not serve it, and Dendrite computes it per request).
func v2Filter(limit int) string {
	return fmt.Sprintf(`{"room":{"timeline":{"limit":%d},"state":{"lazy_load_members":false}},"presence":{"not_types":["*"]}}`, limit)
}

// poll runs one device's poller until the device goes idle, its token is
// revoked, or the service closes.
func (s *Service) poll(d *device) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	d.mu.Lock()
	d.cancel = cancel
	d.mu.Unlock()
	// owned is whether this edge holds the device's lease, and so polls
	// the homeserver for it.
	owned := false
	setOwned := func(o bool) {
		if o == owned {
			return
		}
		owned = o
		d.mu.Lock()
		d.owned = o
		d.mu.Unlock()
		if o {
			s.metrics.pollers.Inc()
		} else {
			s.metrics.pollers.Dec()
		}
	}
	defer setOwned(false)
	firstDone := false
	markFirst := func() {
		if !firstDone {
			firstDone = true
			close(d.first)
		}
	}
	defer func() {
		// A poller stopped before its first sync (to make room, or by a
		// closing edge) must not leave its device's first request waiting.
		if !firstDone {
			d.mu.Lock()
			if d.firstErr == nil {
				d.firstErr = errorf(http.StatusServiceUnavailable, codeUnknown, "Sliding sync for this device was stopped; try again")
			}
			d.mu.Unlock()
			markFirst()
		}
	}()
	lastPos := int64(-1)
	backoff := time.Second
	sleep := func(dur time.Duration, also <-chan struct{}) {
		t := time.NewTimer(dur)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-also:
		}
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.st.release(rctx, d.dev, s.edge)
		cancel()
		s.mu.Lock()
		if s.devices[d.dev] == d {
			delete(s.devices, d.dev)
		}
		for k, te := range s.tokens {
			if te.d == d {
				delete(s.tokens, k)
			}
		}
		s.mu.Unlock()
	}()
	for ctx.Err() == nil {
		d.mu.Lock()
		if time.Since(d.lastUsed) > s.idle {
			d.polling, d.retired = false, true
			d.mu.Unlock()
			s.log.Debug("sliding sync: poller idle", "user", d.userID, "device", d.deviceID)
			return
		}
		token := d.token
		d.mu.Unlock()

		since, pos, _, err := s.st.devicePos(ctx, d.dev)
		if err != nil {
			s.log.Warn("sliding sync: reading the device", "err", err)
			sleep(backoff, nil)
			continue
		}
		if since != "" {
			markFirst()
		}
		if pos != lastPos && lastPos >= 0 {
			d.notify()
		}
		lastPos = pos
		held, err := s.st.lease(ctx, d.dev, s.edge, time.Now().Add(leaseFor))
		if err != nil {
			s.log.Warn("sliding sync: taking the poll lease", "err", err)
			sleep(backoff, nil)
			continue
		}
		setOwned(held)
		if !held {
			// Another edge polls this device: what it stores is read
			// from the store, and this edge takes over if it stops.
			sleep(time.Second, nil)
			continue
		}
		if pending, err := s.st.pendingToDevice(ctx, d.dev); err == nil && pending >= maxPendingToDevice {
			sleep(5*time.Second, d.poke)
			continue
		}

		polled := time.Now()
		r, merr := s.v2sync(ctx, token, since, min(pollTimeout, s.idle))
		if merr != nil {
			if ctx.Err() != nil {
				return
			}
			if merr.status == http.StatusUnauthorized {
				s.log.Info("sliding sync: token revoked, poller stopped", "user", d.userID, "device", d.deviceID)
				d.mu.Lock()
				d.revoked, d.polling, d.retired = true, false, true
				if !firstDone {
					d.firstErr = merr
				}
				d.mu.Unlock()
				markFirst()
				d.notify()
				s.metrics.polls.WithLabelValues("revoked").Inc()
				// A logged-out device's messages are not kept at the edge.
				if err := s.st.forget(ctx, d.dev); err != nil {
					s.log.Warn("sliding sync: forgetting a revoked device", "err", err)
				}
				return
			}
			s.metrics.polls.WithLabelValues("error").Inc()
			s.log.Warn("sliding sync: v2 sync failed", "user", d.userID, "device", d.deviceID, "err", merr.msg)
			if !firstDone {
				d.mu.Lock()
				d.pollErr = merr
				d.mu.Unlock()
				d.notify()
			}
			sleep(backoff, nil)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		fetched := time.Now()
		newPos, err := s.st.apply(ctx, d.dev, since, r)
		if errors.Is(err, errSinceMoved) {
			continue
		}
		if err != nil {
			s.metrics.polls.WithLabelValues("error").Inc()
			s.log.Error("sliding sync: storing a v2 sync", "user", d.userID, "err", err)
			sleep(backoff, nil)
			continue
		}
		s.metrics.polls.WithLabelValues("ok").Inc()
		if since == "" {
			s.log.Info("sliding sync: first v2 sync stored", "user", d.userID, "device", d.deviceID,
				"rooms", len(r.Rooms.Join)+len(r.Rooms.Invite)+len(r.Rooms.Leave),
				"fetch", fetched.Sub(polled).Round(time.Millisecond), "store", time.Since(fetched).Round(time.Millisecond))
		}
		d.mu.Lock()
		d.pollErr = nil
		d.mu.Unlock()
		lastPos = newPos
		markFirst()
		d.notify()
	}
}

// v2sync polls the homeserver's /sync from since with the device's token.
func (s *Service) v2sync(ctx context.Context, token, since string, wait time.Duration) (*v2Sync, *matrixError) {
	q := url.Values{}
	q.Set("set_presence", "offline")
	if since == "" {
		q.Set("filter", v2Filter(initialTimeline))
		q.Set("timeout", "0")
	} else {
		q.Set("filter", v2Filter(liveTimeline))
		q.Set("since", since)
		q.Set("timeout", fmt.Sprint(wait.Milliseconds()))
	}
	ctx, cancel := context.WithTimeout(ctx, pollTimeout+2*time.Minute)
	defer cancel()
	resp, err := s.call(ctx, token, http.MethodGet, "/_matrix/client/v3/sync?"+q.Encode(), nil)
	if err != nil {
		return nil, errorf(http.StatusBadGateway, codeUnknown, "The homeserver did not answer: "+err.Error())
	}
	defer resp.Body.Close()
	// A first sync of a big account is large; the bound is there for a
	// homeserver gone wrong, not for users.
	body, err := readLimited(resp.Body, 512<<20)
	if err != nil {
		return nil, errorf(http.StatusBadGateway, codeUnknown, "Reading the homeserver's sync: "+err.Error())
	}
	if resp.StatusCode != http.StatusOK {
		return nil, upstreamError(resp.StatusCode, body)
	}
	var r v2Sync
	if err := json.Unmarshal(body, &r); err != nil || r.NextBatch == "" {
		return nil, errorf(http.StatusBadGateway, codeUnknown, "The homeserver's sync answer is not understood")
	}
	return &r, nil
}

// call sends one request to the homeserver with a client's token.
func (s *Service) call(ctx context.Context, token, method, pathQuery string, body []byte) (*http.Response, error) {
	s.upMu.RLock()
	base, rt := s.upstream, s.transport
	s.upMu.RUnlock()
	u := base.JoinPath()
	u.RawQuery = ""
	target := u.String()
	for len(target) > 0 && target[len(target)-1] == '/' {
		target = target[:len(target)-1]
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target+pathQuery, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return rt.RoundTrip(req)
}

// readLimited reads at most limit bytes, and fails beyond.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer larger than %d bytes", limit)
	}
	return b, nil
}
