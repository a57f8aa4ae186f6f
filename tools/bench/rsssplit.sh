#!/usr/bin/env bash
# rsssplit.sh BIN — RSS after load split into anonymous and file-backed pages, wellknownd beside Caddy
# (peers.sh's plain configs, its wk and proxy load, then 5 s to settle).
set -uo pipefail
bin=$1
. "$(dirname "$0")/lib.sh"
UP=127.0.0.1:29590
$ref upstream $UP & pids+=($!)
wk_plain 127.0.0.1:29591 127.0.0.1:29595 $UP >$tmp/wk.yaml
caddyfile 29592 $UP >$tmp/Caddyfile
XDG_DATA_HOME=$tmp $bin serve -config $tmp/wk.yaml >$tmp/wk.log 2>&1 & pids+=($!); wk=$!
caddy run --config $tmp/Caddyfile --adapter caddyfile >$tmp/caddy.log 2>&1 & pids+=($!); cd=$!
ready http://127.0.0.1:29591/; ready http://127.0.0.1:29592/
for r in 1 2 3; do for a in 29591 29592; do
  wrk -t1 -c64 -d5s -H "Host: example.com" http://127.0.0.1:$a/.well-known/matrix/client >/dev/null
  wrk -t1 -c64 -d5s -H "Host: matrix.example.com" http://127.0.0.1:$a/_matrix/client/versions >/dev/null
done; done
sleep 5
for p in "wellknownd $wk" "caddy $cd"; do set -- $p
  awk -v n=$1 '/^(VmRSS|RssAnon|RssFile)/ {s=s" "$1" "$2} END {print n":"s}' /proc/$2/status
done
