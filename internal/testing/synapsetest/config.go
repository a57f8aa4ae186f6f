package synapsetest

import (
	"fmt"
	"path"

	"go.yaml.in/yaml/v3"
)

// runConfig is what one run of Synapse changes in the generated
// configuration.
type runConfig struct {
	ServerName string
	// Dir is the run's directory as Synapse sees it, inside the root.
	Dir        string
	Port       int
	Secret     string
	Federation bool
	// Extra top-level keys, set last.
	Extra map[string]any
}

// unlimited is a rate limit no scripted test reaches: tests register, log
// in, create rooms and send in quick succession, as no person would.
var unlimited = map[string]any{"per_second": 10000, "burst_count": 10000}

// editConfig rewrites the homeserver.yaml that --generate-config wrote for
// one run: its own paths, a loopback listener, a shared secret, nothing
// that reaches outside the machine, and rate limits out of the way.
func editConfig(generated []byte, rc runConfig) ([]byte, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(generated, &cfg); err != nil {
		return nil, fmt.Errorf("parsing the generated homeserver.yaml: %w", err)
	}
	if _, ok := cfg["macaroon_secret_key"]; !ok {
		return nil, fmt.Errorf("the generated homeserver.yaml has no macaroon_secret_key: not the layout this harness knows")
	}
	resources := []any{"client"}
	if rc.Federation {
		resources = append(resources, "federation")
	}
	set := map[string]any{
		"server_name": rc.ServerName,
		"pid_file":    path.Join(rc.Dir, "homeserver.pid"),
		"listeners": []any{map[string]any{
			"port": rc.Port, "bind_addresses": []any{"127.0.0.1"}, "type": "http", "tls": false,
			"x_forwarded": false, "resources": []any{map[string]any{"names": resources, "compress": false}},
		}},
		"database":                    map[string]any{"name": "sqlite3", "args": map[string]any{"database": path.Join(rc.Dir, "homeserver.db")}},
		"log_config":                  path.Join(rc.Dir, "log.yaml"),
		"media_store_path":            path.Join(rc.Dir, "media_store"),
		"signing_key_path":            path.Join(rc.Dir, "signing.key"),
		"registration_shared_secret":  rc.Secret,
		"report_stats":                false,
		"trusted_key_servers":         []any{},
		"suppress_key_server_warning": true,
		"rc_message":                  unlimited,
		"rc_registration":             unlimited,
		"rc_login":                    map[string]any{"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
		"rc_joins":                    map[string]any{"local": unlimited, "remote": unlimited},
		"rc_joins_per_room":           unlimited,
		"rc_invites":                  map[string]any{"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
		"rc_room_creation":            unlimited,
		"rc_key_requests":             unlimited,
		"rc_media_create":             unlimited,
		"rc_presence":                 map[string]any{"per_user": unlimited},
		"rc_delayed_event_mgmt":       unlimited,
		"rc_admin_redaction":          unlimited,
		"rc_user_directory":           unlimited,
	}
	if !rc.Federation {
		// An empty allow-list: Synapse neither sends to nor accepts from
		// any other server.
		set["federation_domain_whitelist"] = []any{}
	}
	for k, v := range set {
		cfg[k] = v
	}
	for k, v := range rc.Extra {
		cfg[k] = v
	}
	return yaml.Marshal(cfg)
}

// logConfig sends Synapse's log to its stderr, which the harness keeps in
// the run's synapse.log: the generated one buffers lines in memory for up
// to five seconds, which a failure message would miss.
const logConfig = `version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: precise
root:
  level: INFO
  handlers: [console]
disable_existing_loggers: false
`
