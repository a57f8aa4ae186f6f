#!/usr/bin/env bash
# side.sh NAME=BIN... — wellknownd builds side by side with Caddy and the Go floor, peers.sh's
# scenarios (plain well-known, proxied, HTTPS keep-alive, handshakes), alternating rounds; prints
# per round rps and server CPU µs per request (from /proc/PID/stat), then medians. ROUNDS (4) of
# SECS (5) each; with as many rounds as processes, each runs first once.
set -uo pipefail
secs=${SECS:-5} rounds=${ROUNDS:-4}
. "$(dirname "$0")/lib.sh"
self_signed
UP=127.0.0.1:19590
$ref upstream $UP & pids+=($!)
$ref floor 127.0.0.1:19594 & pids+=($!); declare -A pid plain tls; pid[floor]=$!; plain[floor]=127.0.0.1:19594
$ref proxyfloor 127.0.0.1:19600 $UP & pids+=($!); pid[pfloor]=$!
$ref tlsfloor 127.0.0.1:19601 $tmp/cert.pem $tmp/key.pem & pids+=($!); pid[tfloor]=$!; tls[floor]=19601
names=()
n=0
for arg in "$@"; do
  name=${arg%%=*} bin=${arg#*=}; names+=($name); n=$((n+1))
  hp=$((19610+n)) sp=$((19630+n))
  mkdir -p $tmp/$name $tmp/${name}s
  wk_plain 127.0.0.1:$hp 127.0.0.1:$((19650+n)) $UP >$tmp/$name.yaml
  wk_tls 127.0.0.1:$sp 127.0.0.1:$((19670+n)) $UP >$tmp/${name}s.yaml
  XDG_DATA_HOME=$tmp/$name $bin serve -config $tmp/$name.yaml >$tmp/$name.log 2>&1 & pids+=($!); pid[$name]=$!; plain[$name]=127.0.0.1:$hp
  XDG_DATA_HOME=$tmp/${name}s $bin serve -config $tmp/${name}s.yaml >$tmp/${name}s.log 2>&1 & pids+=($!); pid[${name}s]=$!; tls[$name]=$sp
done
caddyfile 19592 $UP 19597 >$tmp/Caddyfile
caddy run --config $tmp/Caddyfile --adapter caddyfile >$tmp/caddy.log 2>&1 & pids+=($!); pid[caddy]=$!; plain[caddy]=127.0.0.1:19592; tls[caddy]=19597
for s in "${names[@]}" caddy floor; do
  ready "http://${plain[$s]}/"; ready "https://localhost:${tls[$s]}/"
done
ready http://127.0.0.1:19600/
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
# one PID URL HOST [extra wrk args] -> "rps cpu_us"
one() {
  local p=$1 url=$2 host=$3; shift 3
  local t0 t1 out n r
  t0=$(cpu $p); out=$(wrk -t1 -c${C:-64} -d${secs}s -H "Host: $host" "$@" "$url"); t1=$(cpu $p)
  n=$(awk '/requests in/ {print $1}' <<<"$out"); r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  awk -v a=$t0 -v b=$t1 -v n=$n -v r=$r 'BEGIN{printf "%.0f %.2f\n", r, (b-a)*10000/n}'
}
all=("${names[@]}" caddy floor)
out=$tmp/results
for r in $(seq $rounds); do
  # Each round starts one place further along: a fixed order favoured whichever process ran first
  # in a round by as much as 15 % of CPU per request (two runs, the order reversed, 2 Dec 2026).
  k=$(( (r - 1) % ${#all[@]} ))
  for s in "${all[@]:k}" "${all[@]:0:k}"; do
    echo "wk $s $(one ${pid[$s]} http://${plain[$s]}/.well-known/matrix/client example.com)" >>$out
    if [[ $s == floor ]]; then
      echo "proxy $s $(one ${pid[pfloor]} http://127.0.0.1:19600/_matrix/client/versions matrix.example.com)" >>$out
      tp=${pid[tfloor]}
    else
      echo "proxy $s $(one ${pid[$s]} http://${plain[$s]}/_matrix/client/versions matrix.example.com)" >>$out
      tp=${pid[$s]}; [[ $s != caddy ]] && tp=${pid[${s}s]}
    fi
    echo "tls $s $(one $tp https://localhost:${tls[$s]}/.well-known/matrix/client localhost)" >>$out
    echo "handshake $s $(C=32 one $tp https://localhost:${tls[$s]}/.well-known/matrix/client localhost -H 'Connection: close')" >>$out
  done
  echo "round $r done" >&2
done
cat $out > "${SIDE_OUT:-/dev/null}"
echo "medians over $rounds rounds of ${secs}s: rps (CPU µs/req)"
printf '%-10s' scenario; for s in "${all[@]}"; do printf '%22s' $s; done; echo
for sc in wk proxy tls handshake; do
  printf '%-10s' $sc
  for s in "${all[@]}"; do
    rps=$(awk -v a=$sc -v b=$s '$1==a && $2==b {print $3}' $out | sort -n | awk '{x[NR]=$1} END {print (NR%2)?x[(NR+1)/2]:(x[NR/2]+x[NR/2+1])/2}')
    c=$(awk -v a=$sc -v b=$s '$1==a && $2==b {print $4}' $out | sort -n | awk '{x[NR]=$1} END {print (NR%2)?x[(NR+1)/2]:(x[NR/2]+x[NR/2+1])/2}')
    printf '%22s' "$rps ($c)"
  done; echo
done
