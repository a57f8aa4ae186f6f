package slidingsync

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// tokenTTL is how long a token is believed without asking the homeserver
// again. A revoked token is refused at once when its poller hears of it;
// this bounds the rest (a token whose device has no running poller).
const tokenTTL = 30 * time.Second

type tokenEntry struct {
	d       *device
	checked time.Time
}

// device is one device's poller and the requests waiting on it.
type device struct {
	dev              int64
	userID, deviceID string

	mu       sync.Mutex
	token    string // the newest token the device sent; memory only
	lastUsed time.Time
	changed  chan struct{} // closed when the poller stores a batch
	applied  time.Time
	polling  bool
	owned    bool // this edge holds the lease and polls the homeserver
	poke     chan struct{}
	first    chan struct{} // closed once a v2 sync is stored
	revoked  bool
	// cancel ends the poller's work in flight (its long-poll) when it is
	// stopped to make room for another device.
	cancel context.CancelFunc
	// retired is set when the poller stopped for idleness: a request
	// holding this device looks it up again, so one device never gets
	// two pollers.
	retired bool
	// pollErr is why the last poll failed, for a first request that
	// waits on a homeserver that does not answer.
	pollErr  *matrixError
	firstErr *matrixError
}

// authenticate finds the device a token belongs to, asking the
// homeserver (whoami) unless it did within tokenTTL, and makes sure the
// device's poller runs with the newest token.
func (s *Service) authenticate(ctx context.Context, token string) (*device, *matrixError) {
	if err := s.st.init(ctx); err != nil {
		return nil, s.internal("opening the store", err)
	}
	key := tokenHash(token)
	s.mu.Lock()
	te := s.tokens[key]
	s.mu.Unlock()
	var d *device
	if te != nil && time.Since(te.checked) < tokenTTL && !te.d.isRevoked() {
		d = te.d
	} else {
		userID, deviceID, merr := s.whoami(ctx, token)
		if merr != nil {
			if merr.errcode == codeUnknownToken {
				s.mu.Lock()
				delete(s.tokens, key)
				s.mu.Unlock()
			}
			return nil, merr
		}
		dev, err := s.st.device(ctx, userID, deviceID)
		if err != nil {
			return nil, s.internal("registering the device", err)
		}
		s.mu.Lock()
		d = s.devices[dev]
		// A device whose poller stopped (idle, revoked, or making room)
		// may stay in the map until that poller has cleaned up: a new
		// one takes its place at once, or the retry below would spin.
		if d == nil || d.isRetired() {
			d = &device{dev: dev, userID: userID, deviceID: deviceID, changed: make(chan struct{}),
				poke: make(chan struct{}, 1), first: make(chan struct{})}
			s.devices[dev] = d
		}
		// Bound the cache: tokens of devices gone idle are dropped with them.
		s.tokens[key] = &tokenEntry{d: d, checked: time.Now()}
		s.mu.Unlock()
	}
	d.mu.Lock()
	if d.retired {
		d.mu.Unlock()
		s.mu.Lock()
		delete(s.tokens, key)
		s.mu.Unlock()
		return s.authenticate(ctx, token)
	}
	d.token = token
	d.lastUsed = time.Now()
	start := !d.polling
	d.mu.Unlock()
	if start {
		if merr := s.startPoller(d); merr != nil {
			return nil, merr
		}
	}
	return d, nil
}

// Pollers hold a long-poll to the homeserver each, for idle_timeout after
// their device's last request: without bounds, one account logged in many
// times would make the edge hold as many connections to the homeserver
// on its behalf.
const (
	// maxPollersPerUser is how many of one user's devices are polled at
	// once; a new one makes room by stopping the one used least recently
	// (it starts again when that device asks).
	maxPollersPerUser = 16
	// maxPollers is how many devices one edge polls; past it a new device
	// is told to come back later.
	maxPollers = 5000
)

// startPoller starts d's poller within the bounds.
func (s *Service) startPoller(d *device) *matrixError {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.mu.Lock()
	if d.polling {
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	total, mine := 0, 0
	var oldest *device
	var oldestUse time.Time
	for _, o := range s.devices {
		o.mu.Lock()
		if o.polling && o != d {
			total++
			if o.userID == d.userID {
				mine++
				if oldest == nil || o.lastUsed.Before(oldestUse) {
					oldest, oldestUse = o, o.lastUsed
				}
			}
		}
		o.mu.Unlock()
	}
	if mine >= maxPollersPerUser && oldest != nil {
		oldest.stopPolling()
		total--
	}
	if total >= maxPollers {
		return errorf(http.StatusServiceUnavailable, codeLimited, "This server polls as many devices as it can; try again later")
	}
	d.mu.Lock()
	d.polling = true
	d.mu.Unlock()
	s.wg.Add(1)
	go s.poll(d)
	return nil
}

// stopPolling ends d's poller; the device's next request starts another.
func (d *device) stopPolling() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.polling, d.retired = false, true
	if d.cancel != nil {
		d.cancel()
	}
}

// whoami asks the homeserver whose token this is.
func (s *Service) whoami(ctx context.Context, token string) (userID, deviceID string, _ *matrixError) {
	resp, err := s.call(ctx, token, http.MethodGet, "/_matrix/client/v3/account/whoami", nil)
	if err != nil {
		return "", "", errorf(http.StatusBadGateway, codeUnknown, "The homeserver did not answer")
	}
	defer resp.Body.Close()
	body, _ := readLimited(resp.Body, 64<<10)
	if resp.StatusCode != http.StatusOK {
		return "", "", upstreamError(resp.StatusCode, body)
	}
	var who struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	if err := json.Unmarshal(body, &who); err != nil || who.UserID == "" {
		return "", "", errorf(http.StatusBadGateway, codeUnknown, "The homeserver's whoami answer is not understood")
	}
	if who.DeviceID == "" {
		// An appservice or admin token without a device has no to-device
		// queue or keys to sync.
		return "", "", errorf(http.StatusBadRequest, codeUnknown, "Sliding sync needs a token with a device")
	}
	return who.UserID, who.DeviceID, nil
}

// upstreamError passes on the homeserver's Matrix error, or says it failed.
func upstreamError(status int, body []byte) *matrixError {
	var e struct {
		Errcode string `json:"errcode"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Errcode != "" && status >= 400 && status < 500 {
		return errorf(status, e.Errcode, e.Error)
	}
	return errorf(http.StatusBadGateway, codeUnknown, fmt.Sprintf("The homeserver answered %d", status))
}

func (d *device) isRetired() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.retired
}

func (d *device) isRevoked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revoked
}

func (d *device) revokedErr() *matrixError {
	if d.isRevoked() {
		return errorf(http.StatusUnauthorized, codeUnknownToken, "The access token is no longer valid")
	}
	return nil
}

// changes is closed when the poller next stores something.
func (d *device) changes() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// notify wakes the requests waiting on the device.
func (d *device) notify() {
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.applied = time.Now()
	d.mu.Unlock()
}

func (d *device) lastApply() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.applied
}

// wakePoller tells a poller paused on its to-device bound to look again.
func (d *device) wakePoller() {
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

// waitFirstSync holds a device's first request until its first v2 sync is
// stored: there is nothing to answer from before that.
func (d *device) waitFirstSync(ctx, stop context.Context) *matrixError {
	for {
		select {
		case <-d.first:
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.firstErr != nil {
				return d.firstErr
			}
			if d.revoked {
				return errorf(http.StatusUnauthorized, codeUnknownToken, "The access token is no longer valid")
			}
			return nil
		default:
		}
		select {
		case <-d.first:
		case <-d.changes():
			d.mu.Lock()
			err := d.pollErr
			d.mu.Unlock()
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return errorf(http.StatusServiceUnavailable, codeUnknown, "The request ended")
		case <-stop.Done():
			return errorf(http.StatusServiceUnavailable, codeUnknown, "The server is stopping")
		}
	}
}
