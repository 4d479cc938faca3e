#!/usr/bin/env bash
# compose-drill.sh - a failover drill on the docker-compose deployment, run on the Docker host
# the way an operator runs one (docs/deploy.md, "Looking and drilling"): inject a container
# fault on the owner of the slot the client's openconnect session is on, bring the owner back,
# and print what the session db saw (sessions before/after, lost, re-logins, from a
# `gatehousectl drill --watch` on a surviving node) and what the client saw (the largest gap in
# a 10 ms ping from the client container to the lan host, through the tunnel).
#
#   deploy/compose-drill.sh kill          # docker kill of the owner, then docker start
#   deploy/compose-drill.sh stop          # docker stop (SIGTERM: the node hands its slots over)
#   deploy/compose-drill.sh pause         # docker pause for PAUSE_S (3) seconds, then unpause
#   deploy/compose-drill.sh partition     # disconnect the owner from the cluster and public
#                                         # networks for PAUSE_S seconds, then reconnect
#   deploy/compose-drill.sh restart-all   # docker-compose restart of every node
#   deploy/compose.sh options go first:   deploy/compose-drill.sh -p gatehouse --dir DIR kill
#
# Needs: the deployment up (deploy/compose.sh up), openconnect connected in the client
# container (docs/deploy.md), jq. Exit 1 if a session was lost or logged in again.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/faults.sh
. "$HERE/faults.sh"
OPTS=()
while [ $# -gt 1 ]; do OPTS+=("$1"); shift; done
FAULT=${1:-}
case "$FAULT" in
  kill|stop|pause|partition|restart-all) ;;
  *) echo "usage: compose-drill.sh [compose.sh options] kill|stop|pause|partition|restart-all" >&2; exit 2 ;;
esac
PAUSE_S=${PAUSE_S:-3}
command -v jq >/dev/null || { echo "compose-drill.sh: jq is needed" >&2; exit 2; }
C=("$HERE/compose.sh" "${OPTS[@]}" compose)
PROJECT=gatehouse
for ((i = 0; i < ${#OPTS[@]}; i++)); do
  case "${OPTS[$i]}" in -p|--project) PROJECT=${OPTS[$((i + 1))]} ;; esac
done
ctl() { "${C[@]}" exec -T "$1" gatehousectl "${@:2}"; }
container() { "${C[@]}" ps -q "$1"; }

# The lan host's address and the client's session, slot and the slot's owner.
lan=$("${C[@]}" exec -T lan sh -c "ip -4 -o addr show" | awk '$4 ~ /\.10\// {sub(/\/.*/, "", $4); print $4; exit}')
[ -n "$lan" ] || { echo "compose-drill.sh: cannot find the lan host's address" >&2; exit 2; }
sessions=$(ctl gw1 --json show vpn-sessiondb detail 2>/dev/null || ctl gw2 --json show vpn-sessiondb detail)
slot=$(jq -r '[.sessions[] | select(.slot != null)][0].slot // empty' <<< "$sessions")
[ -n "$slot" ] || { echo "compose-drill.sh: no session on a slot: connect openconnect in the client container first" >&2; exit 2; }
failover=$(ctl gw1 --json show failover 2>/dev/null || ctl gw2 --json show failover)
owner=$(jq -r --argjson s "$slot" '.slots[] | select(.id == $s) | .owner' <<< "$failover")
nodes=$(jq -r '.slots[].id' <<< "$failover" | wc -l)
watcher=$(( owner % nodes + 1 ))
[ "$FAULT" = restart-all ] && watcher=$owner
echo "== $FAULT: slot $slot, owner gw$owner; watching from gw$watcher; pinging $lan through the tunnel"

"${C[@]}" exec -T client sh -c "rm -f /tmp/drill-ping; ping -n -D -i 0.01 -W 1 $lan > /tmp/drill-ping 2>&1 &"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
if [ "$FAULT" != restart-all ]; then
  ctl "gw$watcher" --json drill --slot "$slot" --watch --timeout 30 > "$report" &
  watch_pid=$!
fi
sleep 1
t0=$(date +%s.%N)
cid=$(container "gw$owner")
case "$FAULT" in
  kill) docker kill "$cid" >/dev/null; sleep "$PAUSE_S"; docker start "$cid" >/dev/null ;;
  stop) docker stop "$cid" >/dev/null; docker start "$cid" >/dev/null ;;
  pause) docker pause "$cid" >/dev/null; sleep "$PAUSE_S"; docker unpause "$cid" >/dev/null ;;
  partition) partition "$PROJECT" "$cid" "$PAUSE_S" ;;
  restart-all)
    mapfile -t gws < <(jq -r '.slots[].id' <<< "$failover" | sed 's/^/gw/')
    "${C[@]}" restart "${gws[@]}" >/dev/null 2>&1
    ;;
esac
[ "$FAULT" != restart-all ] && wait "$watch_pid" || true
sleep 3
"${C[@]}" exec -T client sh -c "pkill -INT ping 2>/dev/null || killall -INT ping 2>/dev/null || true"
sleep 0.5
gap=$("${C[@]}" exec -T client cat /tmp/drill-ping | awk -v t0="$t0" '
  /bytes from/ { t = substr($1, 2, length($1) - 2) + 0; if (prev && t >= t0 && t - prev > g) g = t - prev; prev = t }
  END { printf "%.0f", g * 1000 }')
after=$(ctl "gw$watcher" --json show vpn-sessiondb detail)
lost=0 relogins=0
if [ -s "$report" ]; then
  jq -r '"sessions before \(.sessions_before)  after \(.sessions_after)  lost \(.sessions_lost)  back \(.back)/\(.active_before)  resumes \(.resumes)  re-logins \(.relogins)  gateway blackout max \(.blackout_max_ms) ms  new owner gw\(.to_node)"' "$report"
  lost=$(jq -r '.sessions_lost' "$report"); relogins=$(jq -r '.relogins' "$report")
else
  before_n=$(jq '.sessions | length' <<< "$sessions"); after_n=$(jq '.sessions | length' <<< "$after")
  echo "sessions before $before_n  after $after_n"
  [ "$after_n" -ge "$before_n" ] || lost=$((before_n - after_n))
fi
idx=$(jq -r --argjson s "$slot" '[.sessions[] | select(.slot == $s)][0].index' <<< "$sessions")
ip0=$(jq -r --argjson i "$idx" '.sessions[] | select(.index == $i) | .assigned_ip' <<< "$sessions")
ip1=$(jq -r --argjson i "$idx" '.sessions[] | select(.index == $i) | .assigned_ip' <<< "$after")
echo "client: session $idx, inner address $ip0 -> ${ip1:-gone}; blackout (largest gap in the 10 ms ping) $gap ms (p50 = p99 = max: one tunnel)"
if [ "$lost" != 0 ] || [ "$relogins" != 0 ] || [ "$ip0" != "$ip1" ]; then
  echo "compose-drill.sh: FAILED (a session lost, re-logged in or readdressed)" >&2
  exit 1
fi
