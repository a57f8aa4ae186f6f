package slidingsync

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Bounds on what one request can ask for: each is well above what Element
// X and matrix-js-sdk send, and keeps one client's request from costing
// the edge more than a page of rooms.
const (
	maxBody          = 1 << 20
	maxLists         = 32
	maxRanges        = 8
	maxRangeEnd      = 100000
	maxWindow        = 20000 // rooms in one list's ranges together: the Rust SDK grows its list to every room
	maxSubscriptions = 256
	maxRequiredState = 128
	maxTimelineLimit = 100
	maxToDevice      = 1000
	maxTimeoutMS     = 60000
)

// request is an MSC4186 request body.
type request struct {
	ConnID        string                  `json:"conn_id"`
	Lists         map[string]*listRequest `json:"lists"`
	Subscriptions map[string]*roomConfig  `json:"room_subscriptions"`
	Extensions    extensionsRequest       `json:"extensions"`
	Unsubscribe   []string                `json:"unsubscribe_rooms"`
}

// roomConfig is what a list or a subscription asks of each room.
type roomConfig struct {
	RequiredState [][]string `json:"required_state"`
	TimelineLimit int        `json:"timeline_limit"`
}

type listRequest struct {
	roomConfig
	Ranges  [][2]int    `json:"ranges"`
	Filters *listFilter `json:"filters"`
}

// listFilter is the filters Element X and matrix-js-sdk send. A nil
// pointer is "either".
type listFilter struct {
	IsDM        *bool     `json:"is_dm"`
	IsInvite    *bool     `json:"is_invite"`
	IsEncrypted *bool     `json:"is_encrypted"`
	RoomTypes   []*string `json:"room_types"`
	NotTypes    []*string `json:"not_room_types"`
	Tags        []string  `json:"tags"`
	NotTags     []string  `json:"not_tags"`
	Spaces      []string  `json:"spaces"`
}

type extension struct {
	Enabled *bool `json:"enabled"`
}

func (e extension) on() bool { return e.Enabled != nil && *e.Enabled }

type extensionsRequest struct {
	ToDevice struct {
		extension
		Since string `json:"since"`
		Limit int    `json:"limit"`
	} `json:"to_device"`
	E2EE        extension `json:"e2ee"`
	AccountData extension `json:"account_data"`
	Receipts    extension `json:"receipts"`
	Typing      extension `json:"typing"`
}

// parseRequest reads and bounds a request body; what it refuses gets a
// Matrix error naming the field.
func parseRequest(body []byte) (*request, *matrixError) {
	var req request
	if len(strings.TrimSpace(string(body))) == 0 {
		return &req, nil
	}
	if err := json.Unmarshal(body, &req); err != nil {
		if _, ok := err.(*json.SyntaxError); ok {
			return nil, errorf(http.StatusBadRequest, codeNotJSON, "The body is not JSON: "+err.Error())
		}
		return nil, errorf(http.StatusBadRequest, codeBadJSON, "The body is not a sliding sync request: "+err.Error())
	}
	bad := func(format string, args ...any) *matrixError {
		return errorf(http.StatusBadRequest, codeInvalidParam, fmt.Sprintf(format, args...))
	}
	if len(req.ConnID) > 128 {
		return nil, bad("conn_id is longer than 128 bytes")
	}
	if len(req.Lists) > maxLists {
		return nil, bad("at most %d lists", maxLists)
	}
	for name, l := range req.Lists {
		if l == nil {
			return nil, bad("lists.%s is null", name)
		}
		if len(name) > 128 {
			return nil, bad("a list name is longer than 128 bytes")
		}
		if len(l.Ranges) > maxRanges {
			return nil, bad("lists.%s: at most %d ranges", name, maxRanges)
		}
		window := 0
		for _, r := range l.Ranges {
			if r[0] < 0 || r[1] < r[0] || r[1] > maxRangeEnd {
				return nil, bad("lists.%s.ranges: [%d, %d] is not a range of positions", name, r[0], r[1])
			}
			window += r[1] - r[0] + 1
		}
		if window > maxWindow {
			return nil, bad("lists.%s.ranges cover more than %d rooms", name, maxWindow)
		}
		if err := l.roomConfig.check("lists." + name); err != nil {
			return nil, err
		}
	}
	if len(req.Subscriptions) > maxSubscriptions {
		return nil, bad("at most %d room_subscriptions", maxSubscriptions)
	}
	for id, sub := range req.Subscriptions {
		if sub == nil || !strings.HasPrefix(id, "!") {
			return nil, bad("room_subscriptions: %q is not a room ID with a subscription", id)
		}
		if err := sub.check("room_subscriptions." + id); err != nil {
			return nil, err
		}
	}
	if l := req.Extensions.ToDevice.Limit; l <= 0 || l > maxToDevice {
		req.Extensions.ToDevice.Limit = 100
	}
	return &req, nil
}

func (c *roomConfig) check(field string) *matrixError {
	if len(c.RequiredState) > maxRequiredState {
		return errorf(http.StatusBadRequest, codeInvalidParam, fmt.Sprintf("%s.required_state: at most %d entries", field, maxRequiredState))
	}
	for _, pair := range c.RequiredState {
		if len(pair) != 2 {
			return errorf(http.StatusBadRequest, codeInvalidParam, field+".required_state: each entry is [type, state_key]")
		}
	}
	if c.TimelineLimit < 0 {
		return errorf(http.StatusBadRequest, codeInvalidParam, field+".timeline_limit is negative")
	}
	if c.TimelineLimit > maxTimelineLimit {
		c.TimelineLimit = maxTimelineLimit
	}
	return nil
}

// merge widens c to cover o too: a room in two lists, or in a list and a
// subscription, gets the most either asks.
func (c roomConfig) merge(o roomConfig) roomConfig {
	out := roomConfig{TimelineLimit: max(c.TimelineLimit, o.TimelineLimit)}
	seen := map[[2]string]bool{}
	for _, list := range [][][]string{c.RequiredState, o.RequiredState} {
		for _, p := range list {
			k := [2]string{p[0], p[1]}
			if !seen[k] {
				seen[k] = true
				out.RequiredState = append(out.RequiredState, p)
			}
		}
	}
	return out
}

// key identifies a required_state: a room sent with another must have its
// state sent again.
func (c roomConfig) key() string {
	pairs := make([]string, len(c.RequiredState))
	for i, p := range c.RequiredState {
		pairs[i] = p[0] + "\x00" + p[1]
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "\x01")
}
