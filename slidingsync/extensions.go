package slidingsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// extensions builds the answer's extensions and reports whether any
// carries something new: to-device messages, device list changes or new
// key counts, account data, receipts, typing.
func (s *Service) extensions(ctx context.Context, d *device, req *request, prev, next *connState, fresh bool, sent map[string]*roomResponse, want map[string]roomConfig) (map[string]any, bool, error) {
	out := map[string]any{}
	changed := false
	ext := req.Extensions
	since := prev.Pos
	pos := next.Pos
	// roomSince is where a room's extension data starts: everything for a
	// room the client gets for the first time.
	roomSince := func(id string) int64 {
		if rr := sent[id]; rr != nil && rr.Initial {
			return 0
		}
		return since
	}

	if ext.ToDevice.on() {
		var acked int64
		if ext.ToDevice.Since != "" {
			var err error
			if acked, err = strconv.ParseInt(ext.ToDevice.Since, 10, 64); err != nil || acked < 0 {
				return nil, false, errorf(http.StatusBadRequest, codeInvalidParam, "extensions.to_device.since is not a position this server gave")
			}
		}
		events, last, err := s.st.toDevice(ctx, d.dev, acked, ext.ToDevice.Limit)
		if errors.Is(err, errBadToDeviceSince) {
			return nil, false, errorf(http.StatusBadRequest, codeInvalidParam, "extensions.to_device.since is not a position this server gave")
		}
		if err != nil {
			return nil, false, err
		}
		if events == nil {
			events = []json.RawMessage{}
		}
		out["to_device"] = map[string]any{"next_batch": strconv.FormatInt(last, 10), "events": events}
		changed = changed || len(events) > 0
		if acked > 0 {
			// Acknowledged messages make room under the poller's bound.
			d.wakePoller()
		}
	}

	if ext.E2EE.on() {
		lists := map[string][]string{"changed": {}, "left": {}}
		if !fresh {
			c, l, err := s.st.deviceLists(ctx, d.dev, since, pos)
			if err != nil {
				return nil, false, err
			}
			if c != nil {
				lists["changed"] = c
			}
			if l != nil {
				lists["left"] = l
			}
			changed = changed || len(c)+len(l) > 0
		}
		otk, fallback, err := s.st.keys(ctx, d.dev)
		if err != nil {
			return nil, false, err
		}
		// A drained pool is a count of 0, said outright: clients that
		// read a missing count as "unchanged" never upload more keys
		// (Synapse #10485).
		var counts map[string]int
		json.Unmarshal(otk, &counts)
		if _, ok := counts["signed_curve25519"]; !ok {
			if counts == nil {
				counts = map[string]int{}
			}
			counts["signed_curve25519"] = 0
			otk, _ = json.Marshal(counts)
		}
		sum := sha256.Sum256(append(append([]byte{}, otk...), fallback...))
		next.Keys = hex.EncodeToString(sum[:12])
		changed = changed || next.Keys != prev.Keys
		out["e2ee"] = map[string]any{
			"device_lists":                     lists,
			"device_one_time_keys_count":       otk,
			"device_unused_fallback_key_types": fallback,
		}
	}

	if ext.AccountData.on() {
		global, err := s.st.accountData(ctx, d.dev, "", since, pos)
		if err != nil {
			return nil, false, err
		}
		if global == nil {
			global = []json.RawMessage{}
		}
		rooms := map[string][]json.RawMessage{}
		for id := range want {
			events, err := s.st.accountData(ctx, d.dev, id, roomSince(id), pos)
			if err != nil {
				return nil, false, err
			}
			if len(events) > 0 {
				rooms[id] = events
			}
		}
		changed = changed || len(global) > 0 || len(rooms) > 0
		out["account_data"] = map[string]any{"global": global, "rooms": rooms}
	}

	for _, e := range []struct {
		on        bool
		name, typ string
	}{{ext.Receipts.on(), "receipts", "m.receipt"}, {ext.Typing.on(), "typing", "m.typing"}} {
		if !e.on {
			continue
		}
		rooms := map[string]any{}
		for id := range want {
			content, err := s.st.ephemeral(ctx, d.dev, id, e.typ, roomSince(id), pos)
			if err != nil {
				return nil, false, err
			}
			if content != nil && string(content) != "{}" {
				rooms[id] = map[string]any{"type": e.typ, "content": content}
			}
		}
		changed = changed || len(rooms) > 0
		out[e.name] = map[string]any{"rooms": rooms}
	}
	return out, changed, nil
}
