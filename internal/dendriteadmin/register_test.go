package dendriteadmin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// homeserver is the shared-secret registration endpoint as Synapse and
// Dendrite implement it: a nonce on GET, then a POST whose MAC must match.
type homeserver struct {
	name   string
	secret string
	mu     sync.Mutex
	nonces map[string]bool
	users  map[string]bool // localpart → admin
}

func (h *homeserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_matrix/key/v2/server" {
		json.NewEncoder(w).Encode(map[string]string{"server_name": h.name})
		return
	}
	if r.URL.Path != registerPath {
		http.NotFound(w, r)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet {
		nonce := "n" + strings.Repeat("x", len(h.nonces))
		h.nonces[nonce] = true
		json.NewEncoder(w).Encode(map[string]string{"nonce": nonce})
		return
	}
	var req struct {
		Nonce, Username, Password, Mac string
		Admin                          bool
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !h.nonces[req.Nonce] {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"unrecognised nonce"}`))
		return
	}
	delete(h.nonces, req.Nonce) // one use each
	if req.Mac != MAC(h.secret, req.Nonce, req.Username, req.Password, req.Admin) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"errcode":"M_FORBIDDEN","error":"HMAC incorrect"}`))
		return
	}
	if _, taken := h.users[req.Username]; taken {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"errcode":"M_USER_IN_USE","error":"User ID already taken."}`))
		return
	}
	h.users[req.Username] = req.Admin
	w.Write([]byte(`{"user_id":"@` + req.Username + `:` + h.name + `"}`))
}

func TestRegister(t *testing.T) {
	hs := &homeserver{name: "example.com", secret: "s3cret", nonces: map[string]bool{}, users: map[string]bool{}}
	srv := httptest.NewServer(hs)
	defer srv.Close()
	ctx := context.Background()

	if id, err := Register(ctx, srv.URL+"/", "example.com", "s3cret", "alice", "pw one", true); err != nil || id != "@alice:example.com" {
		t.Fatalf("register alice: %q %v", id, err)
	}
	if _, err := Register(ctx, srv.URL, "example.com", "s3cret", "bob", "pw two", false); err != nil {
		t.Fatalf("register bob: %v", err)
	}
	if admin, ok := hs.users["alice"]; !ok || !admin {
		t.Errorf("alice: registered %v admin %v", ok, admin)
	}
	if admin := hs.users["bob"]; admin {
		t.Error("bob was made an admin")
	}

	_, err := Register(ctx, srv.URL, "example.com", "s3cret", "alice", "again", false)
	if err == nil || !strings.Contains(err.Error(), "the name is taken") {
		t.Errorf("a taken name gave %v", err)
	}
	_, err = Register(ctx, srv.URL, "example.com", "wrong", "carol", "pw", false)
	if err == nil || !strings.Contains(err.Error(), "refused the shared secret") {
		t.Errorf("a wrong secret gave %v", err)
	}
	if _, ok := hs.users["carol"]; ok {
		t.Error("carol was registered with a wrong secret")
	}
	// A homeserver for another name gets nothing: not even the nonce request.
	_, err = Register(ctx, srv.URL, "example.org", "s3cret", "dave", "pw", false)
	if err == nil || !strings.Contains(err.Error(), `is "example.com", not "example.org"; nothing was sent`) {
		t.Errorf("another server name gave %v", err)
	}
	if _, ok := hs.users["dave"]; ok {
		t.Error("dave was registered on the wrong server")
	}
}

// TestRegisterNeverFollowsRedirects: a registration POST answered with a
// redirect is an error; the password and MAC are not sent again.
func TestRegisterNeverFollowsRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Write([]byte(`{"user_id":"@alice:evil.org"}`))
	}))
	defer evil.Close()
	hs := &homeserver{name: "example.com", secret: "s3cret", nonces: map[string]bool{}, users: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			http.Redirect(w, r, evil.URL+registerPath, http.StatusPermanentRedirect)
			return
		}
		hs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	_, err := Register(context.Background(), srv.URL, "example.com", "s3cret", "alice", "pw", false)
	if err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Fatalf("a redirected registration gave %v", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}

// TestMAC pins the MAC to the algorithm's definition, with values computed
// by openssl: printf 'abcd\0alice\0wonderland\0admin' | openssl dgst -sha1 -hmac secret
func TestMAC(t *testing.T) {
	if got := MAC("secret", "abcd", "alice", "wonderland", true); got != "a6f7338bba1d24fcfd25c9f3ed6632fecae24312" {
		t.Errorf("admin MAC %s", got)
	}
	if got := MAC("secret", "abcd", "alice", "wonderland", false); got != "c4d214bb1dd9c528d3c1e9f12128d90023b37bb8" {
		t.Errorf("notadmin MAC %s", got)
	}
}
