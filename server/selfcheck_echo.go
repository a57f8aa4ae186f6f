package server

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// echoes answer the self-check's encoded-path probes: a federation path
// with %2F in it, carrying a token made for one run. The public handlers
// answer a request that carries a live token with the request URI as it
// arrived, so that the self-check sees whether something in front (a CDN,
// another proxy) decoded %2F on the way. Between runs no token is live
// and nothing is answered: what costs every request is one atomic load.
type echoes struct {
	live   atomic.Int32
	mu     sync.Mutex
	tokens []string
}

func newEchoes() *echoes { return &echoes{} }

// echoPrefix starts every probe's path; "%24" is "$", as event IDs start.
const echoPrefix = "/_matrix/federation/v1/event/%24wellknownd-self-check-"

// path makes a probe path with a new live token.
func (e *echoes) path() string {
	token := rand.Text()
	e.mu.Lock()
	e.tokens = append(e.tokens, token)
	e.live.Store(int32(len(e.tokens)))
	e.mu.Unlock()
	return echoPrefix + token + "%2Fkept"
}

// reset ends the run's tokens.
func (e *echoes) reset() {
	e.mu.Lock()
	e.tokens = nil
	e.live.Store(0)
	e.mu.Unlock()
}

// wrap answers the probes before h sees them.
func (e *echoes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.live.Load() > 0 && e.answer(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (e *echoes) answer(w http.ResponseWriter, r *http.Request) bool {
	e.mu.Lock()
	live := false
	for _, t := range e.tokens {
		if strings.Contains(r.RequestURI, t) {
			live = true
			break
		}
	}
	e.mu.Unlock()
	if !live {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"wellknownd_self_check_request_uri": r.RequestURI})
	return true
}
