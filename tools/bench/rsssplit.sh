#!/usr/bin/env bash
# rsssplit.sh BIN — RSS after load split into anonymous and file-backed pages, wellknownd beside Caddy
# (peers.sh's plain configs, its wk and proxy load, then 5 s to settle).
set -uo pipefail
bin=$1
tmp=$(mktemp -d)
ref=$tmp/refserver
(cd "$(dirname "$0")/../../../shared/bench/refserver" && go build -o "$ref" .) || { echo "$0: needs ../shared/bench/refserver beside the project" >&2; exit 2; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
UP=127.0.0.1:29590
$ref upstream $UP & pids+=($!)
cat > $tmp/wk.yaml <<YAML
server_name: example.com
delegation:
  server: matrix.example.com:443
  client_base_url: https://matrix.example.com
hosts: [example.com, matrix.example.com]
listen:
  http: "127.0.0.1:29591"
  https: ""
  federation: ""
  admin: "127.0.0.1:29595"
tls:
  mode: "off"
upstream:
  url: http://$UP
YAML
cat > $tmp/Caddyfile <<CADDY
{
	admin off
	auto_https disable_redirects
	log default {
		output discard
	}
}
http://example.com:29592 {
	header /.well-known/matrix/* Access-Control-Allow-Origin "*"
	header /.well-known/matrix/* Content-Type "application/json"
	respond /.well-known/matrix/client \`{"m.homeserver":{"base_url":"https://matrix.example.com"}}\`
	respond 404
}
http://matrix.example.com:29592 {
	reverse_proxy $UP
}
CADDY
XDG_DATA_HOME=$tmp $bin serve -config $tmp/wk.yaml >$tmp/wk.log 2>&1 & pids+=($!); wk=$!
caddy run --config $tmp/Caddyfile --adapter caddyfile >$tmp/caddy.log 2>&1 & pids+=($!); cd=$!
sleep 3
for r in 1 2 3; do for a in 29591 29592; do
  wrk -t1 -c64 -d5s -H "Host: example.com" http://127.0.0.1:$a/.well-known/matrix/client >/dev/null
  wrk -t1 -c64 -d5s -H "Host: matrix.example.com" http://127.0.0.1:$a/_matrix/client/versions >/dev/null
done; done
sleep 5
for p in "wellknownd $wk" "caddy $cd"; do set -- $p
  awk -v n=$1 '/^(VmRSS|RssAnon|RssFile)/ {s=s" "$1" "$2} END {print n":"s}' /proc/$2/status
done
