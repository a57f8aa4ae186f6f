package dendriteadmin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// homeserver is the shared-secret registration endpoint as Synapse and
// Dendrite implement it: a nonce on GET, then a POST whose MAC must match.
type homeserver struct {
	secret string
	mu     sync.Mutex
	nonces map[string]bool
	users  map[string]bool // localpart → admin
}

func (h *homeserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	w.Write([]byte(`{"user_id":"@` + req.Username + `:example.com"}`))
}

func TestRegister(t *testing.T) {
	hs := &homeserver{secret: "s3cret", nonces: map[string]bool{}, users: map[string]bool{}}
	srv := httptest.NewServer(hs)
	defer srv.Close()
	ctx := context.Background()

	if err := Register(ctx, srv.URL+"/", "s3cret", "alice", "pw one", true); err != nil {
		t.Fatalf("register alice: %v", err)
	}
	if err := Register(ctx, srv.URL, "s3cret", "bob", "pw two", false); err != nil {
		t.Fatalf("register bob: %v", err)
	}
	if admin, ok := hs.users["alice"]; !ok || !admin {
		t.Errorf("alice: registered %v admin %v", ok, admin)
	}
	if admin := hs.users["bob"]; admin {
		t.Error("bob was made an admin")
	}

	err := Register(ctx, srv.URL, "s3cret", "alice", "again", false)
	if err == nil || !strings.Contains(err.Error(), "the name is taken") {
		t.Errorf("a taken name gave %v", err)
	}
	err = Register(ctx, srv.URL, "wrong", "carol", "pw", false)
	if err == nil || !strings.Contains(err.Error(), "refused the shared secret") {
		t.Errorf("a wrong secret gave %v", err)
	}
	if _, ok := hs.users["carol"]; ok {
		t.Error("carol was registered with a wrong secret")
	}
	err = Register(ctx, srv.URL+"/elsewhere", "s3cret", "dave", "pw", false)
	if err == nil || !strings.Contains(err.Error(), "registration nonce") {
		t.Errorf("no registration endpoint gave %v", err)
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
