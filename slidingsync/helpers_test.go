package slidingsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/wellknownd/wellknownd/internal/dendriteadmin"
	"github.com/wellknownd/wellknownd/internal/testing/dendritetest"
	"github.com/wellknownd/wellknownd/internal/testing/msc4186"
)

// homeserver is a real Dendrite and the sliding-sync service in front of it.
type homeserver struct {
	den *dendritetest.Dendrite
	svc *Service
	// url serves the service at Path, as the edge does.
	url string
}

func startHomeserver(t testing.TB) *homeserver {
	t.Helper()
	den := dendritetest.Start(t, dendritetest.Options{})
	h := &homeserver{den: den}
	h.svc = openService(t, den.URL, filepath.Join(t.TempDir(), "ss.db"), "")
	h.url = serveService(t, h.svc)
	return h
}

func openService(t testing.TB, upstream, sqlitePath, pg string) *Service {
	t.Helper()
	u, _ := url.Parse(upstream)
	cfg := Config{Upstream: u, SQLitePath: sqlitePath, PostgresURL: pg, IdleTimeout: time.Minute}
	if os.Getenv("SS_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	svc, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

func serveService(t testing.TB, svc *Service) string {
	mux := http.NewServeMux()
	mux.Handle(Path, svc)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// user registers and logs in a user on Dendrite.
func (h *homeserver) user(t testing.TB, name string) *mautrix.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := dendriteadmin.Register(ctx, h.den.URL, "localhost", h.den.Secret, name, "password-"+name, false); err != nil {
		t.Fatalf("registering %s: %v", name, err)
	}
	return h.login(t, name)
}

// login logs in a new device of an existing user.
func (h *homeserver) login(t testing.TB, name string) *mautrix.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli, err := mautrix.NewClient(h.den.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name},
		Password:         "password-" + name,
		StoreCredentials: true,
	}); err != nil {
		t.Fatalf("logging in %s: %v", name, err)
	}
	return cli
}

func createRoom(t testing.TB, cli *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	resp, err := cli.CreateRoom(context.Background(), req)
	if err != nil {
		t.Fatalf("creating a room: %v", err)
	}
	return resp.RoomID
}

func send(t testing.TB, cli *mautrix.Client, room id.RoomID, text string) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(context.Background(), room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
	if err != nil {
		t.Fatalf("sending to %s: %v", room, err)
	}
	return resp.EventID
}

// answer is a decoded sliding-sync answer.
type answer struct {
	Pos   string `json:"pos"`
	Lists map[string]struct {
		Count int `json:"count"`
		Ops   []struct {
			Op      string   `json:"op"`
			Range   [2]int   `json:"range"`
			RoomIDs []string `json:"room_ids"`
		} `json:"ops"`
	} `json:"lists"`
	Rooms map[string]struct {
		Name              string            `json:"name"`
		Initial           bool              `json:"initial"`
		RequiredState     []json.RawMessage `json:"required_state"`
		Timeline          []json.RawMessage `json:"timeline"`
		Limited           bool              `json:"limited"`
		PrevBatch         string            `json:"prev_batch"`
		NumLive           int               `json:"num_live"`
		JoinedCount       int               `json:"joined_count"`
		InvitedCount      int               `json:"invited_count"`
		NotificationCount int               `json:"notification_count"`
		HighlightCount    int               `json:"highlight_count"`
		BumpStamp         int64             `json:"bump_stamp"`
		IsDM              bool              `json:"is_dm"`
		InviteState       []json.RawMessage `json:"invite_state"`
		Heroes            []hero            `json:"heroes"`
	} `json:"rooms"`
	Extensions map[string]json.RawMessage `json:"extensions"`
	Errcode    string                     `json:"errcode"`
	Error      string                     `json:"error"`
}

// ssync makes one sliding-sync request as a client would.
func ssync(t testing.TB, base, token, pos string, timeout time.Duration, body any) (int, *answer) {
	t.Helper()
	raw, _ := json.Marshal(body)
	q := url.Values{}
	if pos != "" {
		q.Set("pos", pos)
	}
	if timeout > 0 {
		q.Set("timeout", strconv.Itoa(int(timeout.Milliseconds())))
	}
	req, _ := http.NewRequest(http.MethodPost, base+Path+"?"+q.Encode(), bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("sliding sync: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("sliding sync answered %d, not JSON: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, &a
}

// bodies are the message bodies of a timeline, oldest first.
func bodies(events []json.RawMessage) []string {
	var out []string
	for _, raw := range events {
		var e struct {
			Type    string `json:"type"`
			Content struct {
				Body string `json:"body"`
			} `json:"content"`
		}
		json.Unmarshal(raw, &e)
		if e.Type == "m.room.message" {
			out = append(out, e.Content.Body)
		}
	}
	return out
}

// waitFor polls cond until it holds, for changes that reach the store
// through the poller.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// account registers a user on the homeserver and gives its session as
// the msc4186 and jssdk harnesses take it.
func (h *homeserver) account(t testing.TB, name string) msc4186.Account {
	t.Helper()
	c := h.user(t, name)
	return msc4186.Account{UserID: c.UserID.String(), AccessToken: c.AccessToken, DeviceID: c.DeviceID.String()}
}

// edgeFront is one server that is what the edge is to a client: the
// sliding sync service at Path, /versions advertising it, and everything
// else proxied to Dendrite, so a client that calls other endpoints too
// (matrix-js-sdk's MatrixClient does) talks to one base URL.
type edgeFront struct {
	URL string
	svc atomic.Pointer[Service]
}

func serveFront(t testing.TB, upstream string, svc *Service) *edgeFront {
	t.Helper()
	f := &edgeFront{}
	f.svc.Store(svc)
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.URL.Path != "/_matrix/client/versions" || resp.StatusCode != http.StatusOK {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if b, err = AddToVersions(b); err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			return nil
		},
	}
	mux := http.NewServeMux()
	mux.Handle(Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.svc.Load().ServeHTTP(w, r) }))
	mux.Handle("/", proxy)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// swap makes svc answer the sliding sync requests that come next; those
// already with the old service finish there.
func (f *edgeFront) swap(svc *Service) { f.svc.Store(svc) }

// oneTimeKeys are n signed one-time keys of a device, as a client
// uploads them. Neither server checks the signatures (Synapse requires
// them to be there); what is tested is the counts clients are told.
func oneTimeKeys(user, device string, n int) map[id.KeyID]mautrix.OneTimeKey {
	otks := map[id.KeyID]mautrix.OneTimeKey{}
	for i := range n {
		otks[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, fmt.Sprintf("AAAA%d", i))] = mautrix.OneTimeKey{
			Key:        id.Curve25519(fmt.Sprintf("key%d", i)),
			Signatures: signatures.Signatures{id.UserID(user): {id.NewKeyID(id.KeyAlgorithmEd25519, device): "sig"}},
		}
	}
	return otks
}

// deviceKeys are a device's identity keys, uploaded when it logs in: the
// device lists of the users who share a room with it change.
func deviceKeys(c *mautrix.Client) *mautrix.DeviceKeys {
	return &mautrix.DeviceKeys{
		UserID: c.UserID, DeviceID: c.DeviceID, Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		Keys: mautrix.KeyMap{
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, c.DeviceID): "curvekey",
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, c.DeviceID):    "edkey",
		},
		Signatures: signatures.Signatures{c.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, string(c.DeviceID)): "sig"}},
	}
}
