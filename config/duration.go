package config

import (
	"fmt"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"
)

var durationType = reflect.TypeFor[time.Duration]()

// decodeDuration reads a time.Duration written the Go way: 90s, 30m, 4h.
// The fields are time.Duration itself, as the code that uses them wants
// them; the decoder calls this for each.
func decodeDuration(n *yaml.Node) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("must be a duration such as 30s, 15m or 4h")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write it like 30s, 15m or 4h", n.Value)
	}
	return v, nil
}
