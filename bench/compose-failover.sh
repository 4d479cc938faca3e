#!/usr/bin/env bash
# compose-failover.sh - client-observed blackout of container faults on the docker-compose
# deployment (needs root and Docker): `gh-fleet` in the client container holds N CSTP sessions
# on slot 1's address and re-attaches after every drop, as openconnect does; each drill
# injects FAULT on slot 1's current owner and brings it back. Prints one markdown table row
# per fault: client blackout p50 / p99 / max (drill start -> each session re-attached), lost
# sessions (gh-fleet's 401s), sessions that never came back.
#
#   sudo bash bench/compose-failover.sh                       # kill and pause, 20 drills, 100 sessions
#   sudo FAULTS="kill" DRILLS=5 bash bench/compose-failover.sh
#
# Knobs: FAULTS ("kill pause": docker kill then docker start / docker pause 3 s then unpause),
# DRILLS (20), SESSIONS (100), PROFILE (release), SETTLE_S (3: pause after the owner is back).
# Takes the compose test's machine-wide lock; the deployment (project ghbench, networks
# 172.29.200-202) is removed at the end, also on error or Ctrl-C.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
FAULTS=${FAULTS:-kill pause}
DRILLS=${DRILLS:-20}
SESSIONS=${SESSIONS:-100}
PROFILE=${PROFILE:-release}
SETTLE_S=${SETTLE_S:-3}
DIR=$(mktemp -d /tmp/ghbench-XXXXXX)
LOCK=/tmp/gatehouse-e2e-compose.lock
export GATEHOUSE_NET_PUBLIC=172.29.200 GATEHOUSE_NET_INSIDE=172.29.201 GATEHOUSE_NET_CLUSTER=172.29.202
CS=("$REPO/deploy/compose.sh" --profile "$PROFILE" -p ghbench --dir "$DIR" --tag bench)
C=("${CS[@]}" compose)
SLOT=$GATEHOUSE_NET_PUBLIC.101

for _ in $(seq 600); do mkdir "$LOCK" 2>/dev/null && break; sleep 1; done
[ -d "$LOCK" ] || { echo "compose-failover.sh: the compose lock $LOCK is held" >&2; exit 1; }
cleanup() {
  "${C[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$DIR"
  rmdir "$LOCK" 2>/dev/null || true
}
trap cleanup EXIT

ctl() { "${C[@]}" exec -T "$1" gatehousectl "${@:2}"; }
owner() { ctl "gw$1" --json show failover | jq -r '.slots[] | select(.id == 1) | .owner'; }
echo "compose-failover: bringing the deployment up ($PROFILE binaries)" >&2
"${CS[@]}" init >&2
# One user holds every fleet session: lift the simultaneous-logins limit (default 3).
for f in "$DIR"/*/node.toml; do
  grep -q '^simultaneous_logins' "$f" \
    && sed -i 's/^simultaneous_logins.*/simultaneous_logins = 100000/' "$f" \
    || sed -i 's/^\[\[group_policy\]\]$/[[group_policy]]\nsimultaneous_logins = 100000/' "$f"
done
"${CS[@]}" up >&2
for i in 1 2 3; do
  for _ in $(seq 120); do ctl "gw$i" --json show failover >/dev/null 2>&1 && break; sleep 1; done
done
for _ in $(seq 120); do [ "$(owner 2 2>/dev/null)" = 1 ] && break; sleep 1; done
PW=$(cat "$DIR/users/password")

echo "| fault | drills | sessions | client blackout p50 / p99 / max ms | lost | not back |"
echo "|---|---|---|---|---|---|"
for fault in $FAULTS; do
  secs=$((120 + DRILLS * 30))
  client=$("${C[@]}" ps -q client)
  "${C[@]}" exec -T -d client sh -c \
    "echo \$\$ > /tmp/fleet.pid; exec gh-fleet $SLOT:443 demo '$PW' $SESSIONS $secs 16 > /tmp/fleet.json 2> /tmp/fleet.err"
  for _ in $(seq 300); do
    docker cp "$client:/tmp/fleet.err" "$DIR/fleet.err" 2>/dev/null
    grep -q "attached=$SESSIONS " "$DIR/fleet.err" 2>/dev/null && break
    sleep 1
  done
  starts=()
  for d in $(seq "$DRILLS"); do
    o=""; for i in 1 2 3; do o=$(owner "$i" 2>/dev/null) && [ -n "$o" ] && [ "$o" != null ] && break; done
    cid=$("${C[@]}" ps -q "gw$o")
    starts+=("$(date +%s.%N)")
    case "$fault" in
      kill) docker kill "$cid" >/dev/null ;;
      pause) docker pause "$cid" >/dev/null; sleep 3; docker unpause "$cid" >/dev/null ;;
      *) echo "compose-failover.sh: unknown fault $fault" >&2; exit 2 ;;
    esac
    # The slot moved and every session is attached again; then the owner comes back.
    for _ in $(seq 60); do
      n=""; for i in 1 2 3; do [ "$i" = "$o" ] && continue; n=$(owner "$i" 2>/dev/null) && break; done
      [ -n "$n" ] && [ "$n" != "$o" ] && [ "$n" != null ] && break
      sleep 0.5
    done
    [ "$fault" = kill ] && docker start "$cid" >/dev/null
    for _ in $(seq 60); do ctl "gw$o" --json show failover >/dev/null 2>&1 && break; sleep 1; done
    sleep "$SETTLE_S"
    echo "compose-failover: $fault drill $d/$DRILLS: gw$o -> gw$n" >&2
  done
  "${C[@]}" exec -T client sh -c 'kill -INT $(read p < /tmp/fleet.pid; echo $p)' || true
  for _ in $(seq 60); do
    "${C[@]}" exec -T client sh -c 'test -s /tmp/fleet.json' 2>/dev/null && break; sleep 1
  done
  docker cp "$client:/tmp/fleet.json" "$DIR/fleet.json"
  json=$(cat "$DIR/fleet.json")
  lost=$(jq -r '.lost' <<< "$json"); pending=$(jq -r '.pending' <<< "$json")
  # Each re-attach after drill i's start (and before drill i+1's) counts from drill i's start.
  jq -r '.events[] | "\(.[1])"' <<< "$json" | awk -v starts="${starts[*]}" '
    BEGIN { n = split(starts, s, " ") }
    { t = $1 + 0; for (i = n; i >= 1; i--) if (t >= s[i]) { printf "%.0f\n", (t - s[i]) * 1000; break } }' \
    | sort -n > "$DIR/blackouts"
  k=$(wc -l < "$DIR/blackouts")
  if [ "$k" -gt 0 ]; then
    at() { sed -n "$1p" "$DIR/blackouts"; }
    i50=$(( (k - 1) * 50 / 100 + 1 )); i99=$(( (k - 1) * 99 / 100 + 1 ))
    row="$(at $i50) / $(at $i99) / $(at "$k") ($k re-attaches)"
  else
    row="– / – / –"
  fi
  echo "| docker $fault | $DRILLS | $SESSIONS | $row | $lost | $pending |"
  "${C[@]}" exec -T client sh -c 'rm -f /tmp/fleet.json /tmp/fleet.err /tmp/fleet.pid' || true
done
