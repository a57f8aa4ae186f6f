package slidingsync

import (
	"encoding/json"
	"fmt"
)

// AdvertisedBy reports whether a /versions answer already advertises
// MSC4186: a homeserver that serves it natively (Synapse, conduwuit) is
// left to serve it itself.
func AdvertisedBy(versions []byte) bool {
	var v struct {
		Unstable map[string]bool `json:"unstable_features"`
	}
	return json.Unmarshal(versions, &v) == nil && v.Unstable[UnstableFeature]
}

// AddToVersions returns the homeserver's /versions answer with
// unstable_features[UnstableFeature] set, every other member kept as it
// came (numbers and unknown fields included).
func AddToVersions(versions []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(versions, &doc); err != nil {
		return nil, fmt.Errorf("parsing /versions: %w", err)
	}
	features := map[string]json.RawMessage{}
	if raw, ok := doc["unstable_features"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &features); err != nil {
			return nil, fmt.Errorf("parsing /versions unstable_features: %w", err)
		}
	}
	features[UnstableFeature] = json.RawMessage("true")
	raw, err := json.Marshal(features)
	if err != nil {
		return nil, err
	}
	doc["unstable_features"] = raw
	return json.Marshal(doc)
}
