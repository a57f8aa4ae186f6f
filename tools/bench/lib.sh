# lib.sh — what the scripts in tools/bench share: a scratch directory cleaned up on exit,
# ../shared/bench/refserver built into it (the upstream and the floors, as peers.sh uses them),
# and peers.sh's configurations for wellknownd and Caddy. Sourced, not run.

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
ref=$tmp/refserver
(cd "$(dirname "${BASH_SOURCE[0]}")/../../../shared/bench/refserver" && go build -o "$ref" .) ||
  { echo "$0: needs ../shared/bench/refserver beside the project" >&2; exit 2; }

# wk_plain HTTP ADMIN UPSTREAM — peers.sh's plain-HTTP wellknownd configuration.
wk_plain() {
  cat <<YAML
server_name: example.com
delegation:
  server: matrix.example.com:443
  client_base_url: https://matrix.example.com
hosts: [example.com, matrix.example.com]
listen:
  http: "$1"
  https: ""
  federation: ""
  admin: "$2"
tls:
  mode: "off"
upstream:
  url: http://$3
YAML
}

# wk_tls HTTPS ADMIN UPSTREAM — peers.sh's HTTPS configuration, with $tmp/cert.pem and key.pem.
wk_tls() {
  cat <<YAML
server_name: localhost
delegation:
  server: localhost:443
  client_base_url: https://localhost
hosts: [localhost]
listen:
  http: ""
  https: "$1"
  federation: ""
  admin: "$2"
tls:
  mode: files
  cert_file: $tmp/cert.pem
  key_file: $tmp/key.pem
upstream:
  url: http://$3
YAML
}

# self_signed — the ECDSA P-256 certificate for localhost that peers.sh makes.
self_signed() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tmp/key.pem" \
    -out "$tmp/cert.pem" -days 2 -subj /CN=localhost -addext "subjectAltName=DNS:localhost" 2>/dev/null
}

# caddyfile PORT UPSTREAM [HTTPS_PORT] — peers.sh's Caddy: the document and the proxy on PORT,
# and the document over HTTPS when HTTPS_PORT is given.
caddyfile() {
  cat <<CADDY
{
	admin off
	auto_https disable_redirects
	default_sni localhost
	log default {
		output discard
	}
}
http://example.com:$1 {
	header /.well-known/matrix/* Access-Control-Allow-Origin "*"
	header /.well-known/matrix/* Content-Type "application/json"
	respond /.well-known/matrix/client \`{"m.homeserver":{"base_url":"https://matrix.example.com"}}\`
	respond 404
}
http://matrix.example.com:$1 {
	reverse_proxy $2
}
CADDY
  [[ -z ${3:-} ]] && return
  cat <<CADDY
https://localhost:$3 {
	tls $tmp/cert.pem $tmp/key.pem
	header /.well-known/matrix/* Access-Control-Allow-Origin "*"
	header /.well-known/matrix/* Content-Type "application/json"
	respond /.well-known/matrix/client \`{"m.homeserver":{"base_url":"https://localhost"}}\`
}
CADDY
}

# ready URL — waits until URL answers (5 s), or stops the run.
ready() {
  for _ in $(seq 50); do curl -sk -o /dev/null "$1" && return; sleep 0.1; done
  echo "$0: nothing answers at $1" >&2; exit 1
}
