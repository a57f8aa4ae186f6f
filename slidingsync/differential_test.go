package slidingsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptrace"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/wellknownd/wellknownd/internal/testing/msc4186"
	"github.com/wellknownd/wellknownd/internal/testing/synapsetest"
)

// TestDifferentialAgainstSynapse runs one scenario on Synapse's native
// MSC4186 and on the edge in front of Dendrite, with the same fixture
// and the same raw requests, and compares what a client learns from each
// answer: list counts and windows, the rooms' order by bump_stamp, each
// room's fields (name, heroes, initial, required_state, timeline,
// limited, prev_batch, counts, invite_state, bump_stamp, num_live), the
// extensions' keys and contents, and the errors for a pos that is not
// the caller's.
func TestDifferentialAgainstSynapse(t *testing.T) {
	t.Parallel()
	began := time.Now()
	syn, edge := synapseSide(t), edgeSide(t)
	sides := []*server{syn, edge}
	for _, s := range sides {
		s.seed(t)
	}
	t.Logf("both servers seeded in %v", time.Since(began).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var unexpected []difference
	// What was asked and answered at each step, for failure messages.
	var steps []string
	answers := map[string][2][]byte{}
	requests := map[string]string{}
	judge := func(step string, sf, ef facts) {
		c := stepFacts{syn: sf, edge: ef, edgeTold: edge.told}
		for _, d := range compare(step, sf, ef) {
			i := slices.IndexFunc(expectedDifferences, func(e expected) bool { return e.match(d, c) })
			if i < 0 {
				unexpected = append(unexpected, d)
				continue
			}
			t.Logf("expected difference (%s)\n    %s", expectedDifferences[i].why, d)
		}
		for _, side := range []struct {
			s *server
			f facts
		}{{syn, sf}, {edge, ef}} {
			for p, v := range side.f {
				if strings.HasPrefix(p, "rooms.") && v != "" {
					side.s.told[p] = v
				}
			}
		}
	}
	// each runs fn on both servers, Synapse first, and records the
	// answers.
	each := func(step string, fn func(s *server) *msc4186.Response) {
		t.Helper()
		var a [2][]byte
		for i, s := range sides {
			a[i] = fn(s).Raw
		}
		steps = append(steps, step)
		requests[step], answers[step] = edge.sent, a
		judge(step, syn.normalize(t, a[0]), edge.normalize(t, a[1]))
	}
	ask := func(s *server, timeout time.Duration, req msc4186.Request) *msc4186.Response {
		t.Helper()
		r, err := s.sync(ctx, timeout, req)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		return r
	}

	allExtensions := func(since string) map[string]any {
		toDevice := map[string]any{"enabled": true}
		if since != "" {
			// Synapse refuses an empty since (400 M_INVALID_PARAM).
			toDevice["since"] = since
		}
		return map[string]any{
			"to_device": toDevice, "e2ee": map[string]any{"enabled": true},
			"account_data": map[string]any{"enabled": true}, "receipts": map[string]any{"enabled": true},
			"typing": map[string]any{"enabled": true},
		}
	}
	lists := func(top [2]int) map[string]msc4186.List {
		state := msc4186.RoomSubscription{TimelineLimit: 1, RequiredState: [][2]string{
			{"m.room.name", ""}, {"m.room.encryption", ""}, {"m.room.member", "$ME"}, {"m.room.create", ""},
		}}
		return map[string]msc4186.List{
			"all": {Ranges: [][2]int{{0, 19}}, RoomSubscription: state},
			// A window smaller than the list: its order is the server's.
			"top":       {Ranges: [][2]int{top}, RoomSubscription: msc4186.RoomSubscription{TimelineLimit: 2, RequiredState: [][2]string{}}},
			"dms":       {Ranges: [][2]int{{0, 9}}, RoomSubscription: state, Filters: map[string]any{"is_dm": true}},
			"invites":   {Ranges: [][2]int{{0, 9}}, RoomSubscription: state, Filters: map[string]any{"is_invite": true}},
			"encrypted": {Ranges: [][2]int{{0, 9}}, RoomSubscription: state, Filters: map[string]any{"is_encrypted": true}},
		}
	}
	since := map[*server]string{}
	request := func(s *server, top [2]int) msc4186.Request {
		return msc4186.Request{Lists: lists(top), Extensions: allExtensions(since[s])}
	}
	ack := func(s *server, r *msc4186.Response) *msc4186.Response {
		var td struct {
			NextBatch string `json:"next_batch"`
		}
		json.Unmarshal(r.Extensions["to_device"], &td)
		since[s] = td.NextBatch
		return r
	}

	// 1. The first request: lists with ranges, filters, required_state
	// and timeline_limit, every extension.
	each("first", func(s *server) *msc4186.Response { return ack(s, ask(s, 0, request(s, [2]int{0, 1}))) })

	// 2. A room subscription asks more of a room the lists sent.
	each("subscription", func(s *server) *msc4186.Response {
		req := request(s, [2]int{0, 1})
		req.RoomSubscriptions = map[string]msc4186.RoomSubscription{string(s.f.Secrets): {
			TimelineLimit: 5, RequiredState: [][2]string{{"*", "*"}},
		}}
		return ack(s, ask(s, 0, req))
	})

	// 3. The next request drops the subscription (an MSC4186 request
	// says all it wants, every time): the room's config narrows back to
	// the lists'.
	each("subscription dropped", func(s *server) *msc4186.Response { return ack(s, ask(s, 0, request(s, [2]int{0, 1}))) })

	// 4. A long poll that a message from Bob ends.
	const late = "are you there?"
	each("long poll", func(s *server) *msc4186.Response {
		wrote := make(chan struct{})
		done := make(chan *msc4186.Response, 1)
		errs := make(chan error, 1)
		go func() {
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
			r, err := s.sync(httptrace.WithClientTrace(ctx, trace), 30*time.Second, request(s, [2]int{0, 1}))
			if err != nil {
				errs <- err
				return
			}
			done <- r
		}()
		select {
		case <-wrote:
		case err := <-errs:
			t.Fatalf("%s: the long poll: %v", s.name, err)
		}
		if _, err := s.bob.Client(t, s.base).SendText(ctx, s.f.DM, late); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			return ack(s, r)
		case err := <-errs:
			t.Fatalf("%s: the long poll: %v", s.name, err)
		}
		return nil
	})

	// 5. The window grows to the whole list: the rooms not yet sent come.
	each("range grown", func(s *server) *msc4186.Response { return ack(s, ask(s, 0, request(s, [2]int{0, 3}))) })

	// 6. Alice accepts the invitation: the room comes whole.
	each("invite accepted", func(s *server) *msc4186.Response {
		if _, err := s.alice.Client(t, s.base).JoinRoomByID(ctx, s.f.Invitation); err != nil {
			t.Fatalf("%s: joining: %v", s.name, err)
		}
		return ack(s, ask(s, 30*time.Second, request(s, [2]int{0, 3})))
	})

	// 7. The extensions: Bob sends Alice's device to-device messages and
	// uploads a new device's keys, Alice uploads one-time keys and sets
	// account data, Bob reads and types in the DM. A server may tell of
	// them over several answers: what a client learns from all of them
	// is compared.
	extFacts := map[*server]facts{}
	var extRaw [2][]byte
	for i, s := range sides {
		a, b := s.alice.Client(t, s.base), s.bob.Client(t, s.base)
		for n := 1; n <= 2; n++ {
			if _, err := b.SendToDevice(ctx, event.Type{Type: "org.example.ping", Class: event.ToDeviceEventType}, &mautrix.ReqSendToDevice{
				Messages: map[id.UserID]map[id.DeviceID]*event.Content{id.UserID(s.alice.UserID): {id.DeviceID(s.alice.DeviceID): {Raw: map[string]any{"n": n}}}},
			}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.UploadKeys(ctx, &mautrix.ReqUploadKeys{OneTimeKeys: oneTimeKeys(string(a.UserID), string(a.DeviceID), 4)}); err != nil {
			t.Fatal(err)
		}
		bob2 := s.login(t, "bob")
		if _, err := bob2.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(bob2)}); err != nil {
			t.Fatal(err)
		}
		if err := a.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
			t.Fatal(err)
		}
		if err := a.SetRoomAccountData(ctx, s.f.Lobby, "org.example.draft", map[string]any{"text": "half a thought"}); err != nil {
			t.Fatal(err)
		}
		var lateID id.EventID
		for ev, label := range s.labels {
			if label == "$"+late {
				lateID = id.EventID(ev)
			}
		}
		if err := b.SendReceipt(ctx, s.f.DM, lateID, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := b.UserTyping(ctx, s.f.DM, true, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		// Every answer until all six have been told, merged: a value seen
		// in any answer is kept.
		got := facts{}
		want := []string{"extensions.to_device.events", "extensions.e2ee.device_lists.changed", "extensions.account_data.global",
			"extensions.account_data.rooms.<Lobby>", "extensions.receipts.rooms.<DM>", "extensions.typing.rooms.<DM>"}
		deadline := time.Now().Add(90 * time.Second)
		for {
			r := ack(s, ask(s, 10*time.Second, request(s, [2]int{0, 3})))
			extRaw[i] = append(append(extRaw[i], r.Raw...), '\n')
			for p, v := range s.normalize(t, r.Raw) {
				if !strings.HasPrefix(p, "extensions.") {
					continue
				}
				if v != "" && v != "{}" && v != "[]" {
					if got[p] != "" && got[p] != v && strings.HasSuffix(p, "events") {
						v = got[p] + " ; " + v
					}
					got[p] = v
				} else if _, ok := got[p]; !ok {
					got[p] = v
				}
			}
			missing := slices.DeleteFunc(slices.Clone(want), func(p string) bool { return got[p] != "" })
			if strings.Contains(got["extensions.e2ee.device_one_time_keys_count"], `"signed_curve25519":4`) && len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: after 90s the extensions have not told %v; merged so far:\n%s", s.name, missing, got)
			}
		}
		extFacts[s] = got
	}
	steps = append(steps, "extensions")
	answers["extensions"] = extRaw
	judge("extensions", extFacts[syn], extFacts[edge])

	// 8. Acknowledged to-device messages are not sent again: the next
	// answer, with nothing new, is compared whole.
	each("nothing new", func(s *server) *msc4186.Response { return ack(s, ask(s, 0, request(s, [2]int{0, 3}))) })

	// 9. Errors: Bob with Alice's pos, and a pos that is not one.
	var errFacts [2]facts
	for i, s := range sides {
		errFacts[i] = facts{}
		for _, c := range []struct{ name, token, pos string }{
			{"another user's pos", s.bob.AccessToken, s.conn.Pos},
			{"a malformed pos", s.alice.AccessToken, "not-a-pos"},
		} {
			_, err := (&msc4186.Conn{BaseURL: s.base, Token: c.token, Pos: c.pos}).Sync(ctx, 0, request(s, [2]int{0, 3}))
			var e *msc4186.Error
			if !errors.As(err, &e) {
				errFacts[i][c.name] = fmt.Sprintf("no error: %v", err)
				continue
			}
			errFacts[i][c.name] = fmt.Sprintf("%d %s", e.Status, e.Errcode)
		}
	}
	judge("errors", errFacts[0], errFacts[1])

	if len(unexpected) > 0 {
		var b strings.Builder
		for _, d := range unexpected {
			fmt.Fprintf(&b, "  %s\n", d)
		}
		t.Errorf("%d differences between Synapse and the edge:\n%s", len(unexpected), b.String())
		for _, step := range steps {
			var paths []string
			for _, d := range unexpected {
				if d.step == step {
					paths = append(paths, d.path)
				}
			}
			if len(paths) == 0 {
				continue
			}
			a := answers[step]
			t.Logf("step %q\n  request (to the edge; to Synapse the same but for pos and since):\n    %s\n  synapse answered (what the differences are about):\n    %s\n  edge answered:\n    %s",
				step, requests[step], syn.excerpt(a[0], paths), edge.excerpt(a[1], paths))
		}
	}
	t.Logf("the scenario took %v", time.Since(began).Round(time.Millisecond))
}

// expected is a difference between Synapse and the edge that a client
// does not notice, or that is the homeservers' own rather than the
// edge's: matched by step and path (regular expressions; an empty step is
// any) and, when holds is set, by what each side said.
type expected struct {
	step, path, why string
	holds           func(d difference, c stepFacts) bool
}

// stepFacts are what a difference is judged with: both answers' facts,
// and what the edge had told the client of each room before.
type stepFacts struct {
	syn, edge, edgeTold facts
}

var expectedDifferences = []expected{
	{
		step: "first", path: `extensions\.e2ee\.device_lists \(type\)`,
		why: "Synapse leaves device_lists out of a connection's first answer, the edge sends them empty: nothing changed, either way",
	},
	{
		path: `rooms\.<\w+>\.invite_state`,
		why:  "Dendrite's stripped invite state has no member event of the inviter, Synapse's has: the homeserver's, passed on as it came",
		holds: func(d difference, _ stepFacts) bool {
			var kept []string
			for _, e := range strings.Split(d.synapse, " ; ") {
				if !strings.HasPrefix(e, "m.room.member/") || strings.Contains(e, "membership=invite") {
					kept = append(kept, e)
				}
			}
			return strings.Join(kept, " ; ") == d.edge
		},
	},
	{
		path: `rooms\.<\w+>\.(name|joined_count|invited_count|heroes|is_dm|bump_stamp)`,
		why:  "the edge repeats a room's unchanged name, counts, heroes or bump_stamp when it sends the room again; Synapse leaves them out: the client is told what it knows",
		holds: func(d difference, c stepFacts) bool {
			return d.synapse == "" && d.edge == c.edgeTold[d.path]
		},
	},
	{
		path: `rooms\.<\w+>\.prev_batch`,
		why:  "Synapse sends prev_batch with every timeline, the edge only with a limited one: clients paginate from it only then",
		holds: func(d difference, c stepFacts) bool {
			room := strings.TrimSuffix(d.path, "prev_batch")
			return d.edge == "" && c.syn[room+"limited"] == "" && c.edge[room+"limited"] == ""
		},
	},
	{
		path: `rooms\.<Invitation>\.(bump_stamp|invite_state|unstable_expanded_timeline)`,
		why:  "Synapse sends an invite again, whole, when a window with a longer timeline_limit takes it in (its timeline expansion, flagged unstable_expanded_timeline, though an invite has no timeline); the edge does not: the client has the invite",
		holds: func(d difference, c stepFacts) bool {
			return d.edge == "" && c.syn["rooms.<Invitation>.unstable_expanded_timeline"] != "" && c.edgeTold["rooms.<Invitation>.invite_state"] != ""
		},
	},
}

func (e expected) match(d difference, c stepFacts) bool {
	if e.step != "" && !regexp.MustCompile("^(?:"+e.step+")$").MatchString(d.step) {
		return false
	}
	return regexp.MustCompile("^(?:"+e.path+")$").MatchString(d.path) && (e.holds == nil || e.holds(d, c))
}

// server is one server of the comparison, seeded with msc4186.Seed: Synapse
// serving MSC4186 itself, or the edge in front of Dendrite.
type server struct {
	name       string
	base       string
	alice, bob msc4186.Account
	f          *msc4186.Fixture
	// login logs in another device of a user.
	login func(t *testing.T, user string) *mautrix.Client
	// conn is Alice's sliding sync connection.
	conn *msc4186.Conn
	// labels name what differs between the servers by what it is: room
	// IDs by the fixture's names, event IDs by body or type.
	labels map[string]string
	// bumps is each room's last bump_stamp told: the client's room list
	// is ordered by them.
	bumps map[string]float64
	// told is the last value of each room fact told, by path.
	told facts
	// sent is the last request, for failure messages.
	sent string
}

// sync makes a request on Alice's connection.
func (s *server) sync(ctx context.Context, timeout time.Duration, req msc4186.Request) (*msc4186.Response, error) {
	body, _ := json.Marshal(req)
	s.sent = fmt.Sprintf("POST ?pos=%s&timeout=%d %s", s.conn.Pos, timeout.Milliseconds(), body)
	return s.conn.Sync(ctx, timeout, req)
}

func synapseSide(t *testing.T) *server {
	s := synapsetest.Start(t, synapsetest.Options{})
	account := func(user string) msc4186.Account {
		userID, token, device := s.Register(t, user, "password-"+user, false)
		return msc4186.Account{UserID: userID, AccessToken: token, DeviceID: device}
	}
	sd := &server{name: "synapse", base: s.BaseURL, alice: account("alice"), bob: account("bob")}
	sd.login = func(t *testing.T, user string) *mautrix.Client {
		t.Helper()
		c, err := mautrix.NewClient(s.BaseURL, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Login(context.Background(), &mautrix.ReqLogin{
			Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user},
			Password: "password-" + user, StoreCredentials: true,
		}); err != nil {
			t.Fatalf("logging in %s on synapse: %v", user, err)
		}
		return c
	}
	return sd
}

func edgeSide(t *testing.T) *server {
	h := startHomeserver(t)
	front := serveFront(t, h.den.URL, h.svc)
	sd := &server{name: "edge", base: front.URL, alice: h.account(t, "alice"), bob: h.account(t, "bob")}
	sd.login = func(t *testing.T, user string) *mautrix.Client {
		c := h.login(t, user)
		c.HomeserverURL, _ = c.HomeserverURL.Parse(front.URL)
		return c
	}
	return sd
}

// seed makes the fixture and the labels that map one server's IDs onto
// the other's.
func (s *server) seed(t *testing.T) {
	t.Helper()
	s.f = msc4186.Seed(t, s.base, s.alice, s.bob)
	s.conn = &msc4186.Conn{BaseURL: s.base, Token: s.alice.AccessToken}
	s.bumps, s.told = map[string]float64{}, facts{}
	s.labels = map[string]string{
		string(s.f.Lobby): "<Lobby>", string(s.f.Secrets): "<Secrets>", string(s.f.DM): "<DM>", string(s.f.Invitation): "<Invitation>",
	}
}

// learn labels the events of an answer: "$" and the message's body, or
// its type and state key.
func (s *server) learn(raw []byte) {
	var a struct {
		Rooms map[string]struct {
			Timeline      []msc4186.Event `json:"timeline"`
			RequiredState []msc4186.Event `json:"required_state"`
		} `json:"rooms"`
	}
	json.Unmarshal(raw, &a)
	for _, r := range a.Rooms {
		for _, e := range append(r.Timeline, r.RequiredState...) {
			if e.EventID == "" {
				continue
			}
			label := "$" + e.Body()
			if e.Body() == "" {
				label = "$" + e.Type
				if e.StateKey != nil {
					label += "/" + *e.StateKey
				}
			}
			s.labels[e.EventID] = label
		}
	}
}

// relabel is raw with every room and event ID replaced by its label.
func (s *server) relabel(raw []byte) (map[string]any, error) {
	s.learn(raw)
	text := string(raw)
	ids := make([]string, 0, len(s.labels))
	for id := range s.labels {
		ids = append(ids, id)
	}
	// Longest first: no ID is a prefix of another's replacement.
	sort.Slice(ids, func(i, j int) bool { return len(ids[i]) > len(ids[j]) })
	for _, id := range ids {
		// IDs stand inside JSON strings: the label goes in escaped.
		quoted, _ := json.Marshal(s.labels[id])
		text = strings.ReplaceAll(text, id, string(quoted[1:len(quoted)-1]))
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return nil, fmt.Errorf("%s: relabelling the answer: %w\n%s", s.name, err, raw)
	}
	return out, nil
}

// facts are what a client learns from an answer, by path, with the IDs
// that differ between servers replaced by labels.
type facts map[string]string

// normalize reduces an answer to its facts: list counts and windows,
// each room's fields and what they hold, the client's rooms ordered by
// bump_stamp, and the extensions' keys and contents.
func (s *server) normalize(t *testing.T, raw []byte) facts {
	t.Helper()
	a, err := s.relabel(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := facts{}
	lists, _ := a["lists"].(map[string]any)
	for name, l := range lists {
		l, _ := l.(map[string]any)
		count, _ := l["count"].(float64)
		out["lists."+name+".count"] = fmt.Sprint(count)
		ops, _ := l["ops"].([]any)
		for i, op := range ops {
			op, _ := op.(map[string]any)
			rg, _ := op["range"].([]any)
			ids := strs(op["room_ids"])
			if len(rg) == 2 && rg[0] == 0.0 && rg[1].(float64) >= count-1 {
				// Synapse skips sorting a window that covers the whole
				// list: its order there means nothing, and clients sort by
				// bump_stamp (compared below).
				slices.Sort(ids)
				ids = append(ids, "(any order)")
			}
			out[fmt.Sprintf("lists.%s.ops[%d]", name, i)] = fmt.Sprintf("%v %v %s", op["op"], rg, strings.Join(ids, " "))
		}
	}
	rooms, _ := a["rooms"].(map[string]any)
	for name, r := range rooms {
		r, _ := r.(map[string]any)
		p := "rooms." + name + "."
		for k, v := range r {
			switch k {
			case "notification_count", "highlight_count":
				// Synapse's are a hard-coded 0 (it leaves counting to
				// clients), the edge's are Dendrite's: not compared.
			case "name", "initial", "is_dm", "limited", "num_live", "joined_count", "invited_count":
				if !isZero(v) {
					out[p+k] = fmt.Sprint(v)
				}
			case "heroes", "timeline", "required_state", "invite_state":
				// Below.
			default:
				// Values that differ between servers by nature (bump_stamp,
				// prev_batch): present or not. A field that is false, 0 or
				// empty is absent to a client.
				if !isZero(v) {
					out[p+k] = "present"
				}
			}
		}
		if b, ok := r["bump_stamp"].(float64); ok {
			s.bumps[name] = b
		}
		var heroes []string
		for _, h := range anys(r["heroes"]) {
			h, _ := h.(map[string]any)
			heroes = append(heroes, fmt.Sprintf("%v(%v)", h["user_id"], h["displayname"]))
		}
		if heroes != nil {
			out[p+"heroes"] = strings.Join(heroes, " ")
		}
		var timeline []string
		for _, e := range anys(r["timeline"]) {
			timeline = append(timeline, eventLabel(e))
		}
		if timeline != nil {
			out[p+"timeline"] = strings.Join(timeline, " ; ")
		}
		for _, k := range []string{"required_state", "invite_state"} {
			var state []string
			for _, e := range anys(r[k]) {
				state = append(state, eventLabel(e))
			}
			slices.Sort(state)
			if state != nil {
				out[p+k] = strings.Join(state, " ; ")
			}
		}
	}
	// The client's room list: every room told so far, by its last
	// bump_stamp.
	var names []string
	for name := range s.bumps {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return s.bumps[names[i]] > s.bumps[names[j]] })
	out["the client's rooms by bump_stamp"] = strings.Join(names, " ")

	exts, _ := a["extensions"].(map[string]any)
	out["extensions"] = strings.Join(keys(exts), " ")
	for name, e := range exts {
		e, _ := e.(map[string]any)
		p := "extensions." + name + "."
		for k, v := range e {
			out[p+k+" (type)"] = jsonType(v)
		}
		switch name {
		case "to_device":
			var evs []string
			for _, e := range anys(e["events"]) {
				evs = append(evs, eventLabel(e))
			}
			out[p+"events"] = strings.Join(evs, " ; ")
		case "e2ee":
			out[p+"device_one_time_keys_count"] = compact(e["device_one_time_keys_count"])
			out[p+"device_unused_fallback_key_types"] = compact(e["device_unused_fallback_key_types"])
			dl, _ := e["device_lists"].(map[string]any)
			for _, k := range []string{"changed", "left"} {
				users := strs(dl[k])
				slices.Sort(users)
				out[p+"device_lists."+k] = strings.Join(users, " ")
			}
		case "account_data":
			out[p+"global"] = accountData(e["global"])
			rooms, _ := e["rooms"].(map[string]any)
			for room, evs := range rooms {
				out[p+"rooms."+room] = accountData(evs)
			}
		case "receipts", "typing":
			rooms, _ := e["rooms"].(map[string]any)
			for room, v := range rooms {
				v, _ := v.(map[string]any)
				out[p+"rooms."+room] = fmt.Sprintf("%v %s", v["type"], ephemeral(v["content"]))
			}
		}
	}
	return out
}

// eventLabel is what identifies an event on both servers: type, state
// key, sender and the content a client shows.
func eventLabel(v any) string {
	e, _ := v.(map[string]any)
	l := fmt.Sprint(e["type"])
	if k, ok := e["state_key"]; ok {
		l += "/" + fmt.Sprint(k)
	}
	l += " from " + fmt.Sprint(e["sender"])
	c, _ := e["content"].(map[string]any)
	for _, k := range []string{"membership", "body", "name", "algorithm", "n"} {
		if v, ok := c[k]; ok {
			l += fmt.Sprintf(" %s=%v", k, v)
		}
	}
	return l
}

// accountData is the types of account data events, with the content of
// the test's own (the servers' defaults, push rules above all, differ).
func accountData(v any) string {
	var out []string
	for _, e := range anys(v) {
		e, _ := e.(map[string]any)
		typ := fmt.Sprint(e["type"])
		if strings.HasPrefix(typ, "org.example.") || typ == "m.direct" {
			typ += "=" + compact(e["content"])
		}
		out = append(out, typ)
	}
	slices.Sort(out)
	return strings.Join(out, " ; ")
}

// ephemeral is a receipt or typing content without timestamps.
func ephemeral(v any) string {
	c, _ := v.(map[string]any)
	if ids, ok := c["user_ids"]; ok {
		users := strs(ids)
		slices.Sort(users)
		return "user_ids=" + strings.Join(users, " ")
	}
	var out []string
	for ev, byType := range c {
		byType, _ := byType.(map[string]any)
		for typ, byUser := range byType {
			byUser, _ := byUser.(map[string]any)
			for user, r := range byUser {
				r, _ := r.(map[string]any)
				_, ts := r["ts"].(float64)
				out = append(out, fmt.Sprintf("%s %s %s ts:%v", ev, typ, user, ts))
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ; ")
}

func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case float64:
		return v == 0
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

func anys(v any) []any { a, _ := v.([]any); return a }

func strs(v any) []string {
	var out []string
	for _, x := range anys(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// compact is v as JSON, with the labels' < and > as they are.
func compact(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return strings.TrimSpace(b.String())
}

// difference is one fact the servers disagree on.
type difference struct {
	step, path, synapse, edge string
}

func (d difference) String() string {
	return fmt.Sprintf("%s: %s\n      synapse: %s\n      edge:    %s", d.step, d.path, orNone(d.synapse), orNone(d.edge))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// compare lists the facts of one step that differ.
func compare(step string, syn, edge facts) []difference {
	var paths []string
	for p := range syn {
		paths = append(paths, p)
	}
	for p := range edge {
		if _, ok := syn[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var out []difference
	for _, p := range paths {
		if syn[p] != edge[p] {
			out = append(out, difference{step, p, syn[p], edge[p]})
		}
	}
	return out
}

// excerpt is the parts of an answer (or of answers, one a line) that
// the paths are about, relabelled, without the fields that say nothing
// here (event IDs, timestamps, unsigned, push rules).
func (s *server) excerpt(raw []byte, paths []string) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		a, err := s.relabel([]byte(line))
		if err != nil {
			return err.Error()
		}
		part := map[string]any{}
		pick := func(section, key string) {
			m, _ := a[section].(map[string]any)
			if v, ok := m[key]; ok {
				if part[section] == nil {
					part[section] = map[string]any{}
				}
				part[section].(map[string]any)[key] = v
			}
		}
		for _, p := range paths {
			f := strings.SplitN(p, ".", 3)
			switch {
			case len(f) >= 2 && (f[0] == "lists" || f[0] == "rooms" || f[0] == "extensions"):
				pick(f[0], strings.TrimSuffix(f[1], " (type)"))
			case p == "the client's rooms by bump_stamp":
				rooms, _ := a["rooms"].(map[string]any)
				bumps := map[string]any{}
				for name, r := range rooms {
					r, _ := r.(map[string]any)
					bumps[name] = r["bump_stamp"]
				}
				part["bump_stamps"] = bumps
			}
		}
		out = append(out, compact(strip(part)))
	}
	return strings.Join(out, "\n    ")
}

// strip drops what differs between any two answers and is not compared.
func strip(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			switch k {
			case "event_id", "origin_server_ts", "unsigned", "m.push_rules":
				continue
			}
			if m, ok := x.(map[string]any); ok && m["type"] == "m.push_rules" {
				continue
			}
			out[k] = strip(x)
		}
		return out
	case []any:
		out := []any{}
		for _, x := range v {
			if m, ok := x.(map[string]any); ok && m["type"] == "m.push_rules" {
				continue
			}
			out = append(out, strip(x))
		}
		return out
	}
	return v
}
