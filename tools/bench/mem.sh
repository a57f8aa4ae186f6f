#!/usr/bin/env bash
# mem.sh BIN — idle RSS, after-load RSS and per-long-poll KiB of one wellknownd binary, peers.sh-style.
set -euo pipefail
bin=$1; secs=${SECS:-5}; hold_n=${HOLD:-2000}
. "$(dirname "$0")/lib.sh"
UP=127.0.0.1:28590 WK=127.0.0.1:28591
$ref upstream $UP & pids+=($!)
{ wk_plain $WK 127.0.0.1:28595 $UP; echo "${EXTRA:-}"; } >$tmp/wk.yaml
XDG_DATA_HOME=$tmp $bin serve -config $tmp/wk.yaml >$tmp/wk.log 2>&1 & pids+=($!); wk=$!
ready http://$WK/
sleep 3
st() { awk '/^(VmRSS|RssAnon|RssFile)/ {printf "%s %s ", $1, $2}' /proc/$wk/status; echo; }
echo "idle:  $(st)"
for r in 1 2 3; do
wrk -t1 -c64 -d${secs}s -H "Host: example.com" http://$WK/.well-known/matrix/client | awk '/Requests\/sec/ {print "wk", $2}'
wrk -t1 -c64 -d${secs}s -H "Host: matrix.example.com" http://$WK/_matrix/client/versions | awk '/Requests\/sec/ {print "proxy", $2}'
done
echo "after: $(st)"
sleep ${SETTLE:-3}; echo "settled: $(st)"
curl -s http://127.0.0.1:28595/metrics | grep -E "^go_(memstats|goroutines)" | tr '\n' ' '; echo
if [[ ${LP:-1} == 1 ]]; then
ulimit -n 20000
before=$(ps -o rss= -p $wk)
$ref hold "http://$WK/_matrix/client/v3/sync?timeout=30000" matrix.example.com $hold_n 14 >$tmp/hold.out 2>&1 & hp=$!
sleep 12; during=$(ps -o rss= -p $wk)
curl -s http://127.0.0.1:28595/metrics | grep -E '^go_(memstats_(heap_inuse|heap_alloc|stack_inuse|next_gc)_bytes|goroutines)' | tr '\n' ' '; echo
wait $hp; held=$(head -1 $tmp/hold.out)
curl -s http://127.0.0.1:28595/metrics | grep -E '^wellknownd_(http_requests_total\{.*route="client"|proxy_errors_total)' 
awk -v b=$before -v d=$during -v h=$held 'BEGIN{printf "longpoll KiB/conn %.1f held %d\n", (d-b)/h, h}'
fi
