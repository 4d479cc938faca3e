#!/usr/bin/env bash
# compose-failover.sh - client-observed blackout of container faults on the docker-compose
# deployment (needs root and Docker). In the client container, `gh-fleet` holds SESSIONS CSTP
# sessions on slot 1's address and re-attaches after every drop, as openconnect does, and OC
# real openconnect clients hold sessions on the same slot, each pinging the lan host every
# 10 ms through its own tunnel. Each drill injects FAULT on slot 1's current owner and brings
# it back. Prints one markdown row per fault: gh-fleet blackout p50 / p99 / max (per session
# and drill, from the last frame the session heard before its drop to its re-attach; each
# session probes with a DPD request every PROBE_MS), openconnect blackout p50 / p99 / max
# (largest gap between ping replies in each drill), sessions before -> after, lost,
# re-logins, not back, and dual-owner probes: an ARP request for slot 1's address every 10 ms
# from the client container (gh-arp-probe) all through the drills, counting the probes that
# two hosts answered (the goal is 0).
#
#   sudo bash bench/compose-failover.sh                                   # every fault, 20 drills
#   sudo FAULTS="kill" DRILLS=5 bash bench/compose-failover.sh
#   sudo FAULTS="kill" DRILLS=3 SESSIONS=1000 OC=0 bash bench/compose-failover.sh   # all back
#
# Faults (FAULTS, default all five): kill (docker kill, then docker start), stop (docker stop:
# SIGTERM, the node hands its slots over; then docker start), pause (docker pause for 3 s,
# then unpause), partition (docker network disconnect from the cluster and public networks
# for 3 s, then connect again with the same addresses), restart-all (docker-compose restart
# of every node). Knobs: DRILLS (20), SESSIONS (100), OC (3), PROFILE (release), SETTLE_S (3:
# pause after the owner is back), PROBE_MS (20), LEADER_OWNER (0; 1: before each drill, make
# slot 1's owner the Raft leader too, by restarting the leader until the owner wins an
# election: the drill then also costs the cluster its leader), KEEP (0; 1 leaves the
# deployment up). Takes the compose
# test's machine-wide lock; the deployment (project ghbench, networks 172.29.200-202) is
# removed at the end, also on error or Ctrl-C.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=deploy/faults.sh
. "$REPO/deploy/faults.sh"
FAULTS=${FAULTS:-kill stop pause partition restart-all}
DRILLS=${DRILLS:-20}
SESSIONS=${SESSIONS:-100}
OC=${OC:-3}
PROFILE=${PROFILE:-release}
SETTLE_S=${SETTLE_S:-3}
PROBE_MS=${PROBE_MS:-20}
LEADER_OWNER=${LEADER_OWNER:-0}
DIR=$(mktemp -d /tmp/ghbench-XXXXXX)
LOCK=/tmp/gatehouse-e2e-compose.lock
PROJECT=ghbench
export GATEHOUSE_NET_PUBLIC=172.29.200 GATEHOUSE_NET_INSIDE=172.29.201 GATEHOUSE_NET_CLUSTER=172.29.202
CS=("$REPO/deploy/compose.sh" --profile "$PROFILE" -p "$PROJECT" --dir "$DIR" --tag bench)
C=("${CS[@]}" compose)
SLOT=$GATEHOUSE_NET_PUBLIC.101
LAN=$GATEHOUSE_NET_INSIDE.10
say() { echo "compose-failover: $*" >&2; }

for _ in $(seq 600); do mkdir "$LOCK" 2>/dev/null && break; sleep 1; done
[ -d "$LOCK" ] || { echo "compose-failover.sh: the compose lock $LOCK is held" >&2; exit 1; }
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then say "KEEP=1: left up in $DIR (project $PROJECT)"; rmdir "$LOCK"; return; fi
  "${C[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$DIR"
  rmdir "$LOCK" 2>/dev/null || true
}
trap cleanup EXIT

# docker exec, not docker-compose exec: the latter costs half a second of CPU a call, and the
# polls run while the failover does.
ctl() { docker exec "${PROJECT}_$1_1" gatehousectl "${@:2}"; }
cx() { docker exec -i "${PROJECT}_client_1" sh -c "$1"; }
cxd() { docker exec -d "${PROJECT}_client_1" sh -c "$1"; }
owner() { ctl "gw$1" --json show failover | jq -r '.slots[] | select(.id == 1) | .owner'; }
ready() { ctl "gw$1" --json show failover >/dev/null 2>&1; }
leader() { ctl "gw$1" --json show cluster 2>/dev/null | jq -r '.leader // "?"'; }
# Any node's answer for slot 1's owner, once it has one.
slot_owner() {
  local o="" i
  for _ in $(seq 60); do
    for i in 1 2 3; do o=$(owner "$i" 2>/dev/null) || o=""; [ -n "$o" ] && [ "$o" != null ] && break; done
    [ -n "$o" ] && [ "$o" != null ] && { echo "$o"; return; }
    sleep 0.5
  done
  return 1
}
sessions() {
  local i; for i in 1 2 3; do
    ctl "gw$i" --json show vpn-sessiondb 2>/dev/null | jq '.sessions | length' && return
  done
  echo "?"
}
# Nearest-rank p50 / p99 / max of the numbers in file $1 (one a line).
pcts() {
  local k; k=$(wc -l < "$1")
  if [ "$k" -eq 0 ]; then echo "– / – / –"; return; fi
  sort -n "$1" -o "$1"
  echo "$(sed -n "$(( (k - 1) * 50 / 100 + 1 ))p" "$1") / $(sed -n "$(( (k - 1) * 99 / 100 + 1 ))p" "$1") / $(tail -1 "$1")"
}

say "bringing the deployment up ($PROFILE binaries)"
"${CS[@]}" init >&2
# One user holds every session: lift the simultaneous-logins limit (default 3).
for f in "$DIR"/*/node.toml; do
  grep -q '^simultaneous_logins' "$f" \
    && sed -i 's/^simultaneous_logins.*/simultaneous_logins = 100000/' "$f" \
    || sed -i 's/^\[\[group_policy\]\]$/[[group_policy]]\nsimultaneous_logins = 100000/' "$f"
done
# Slot 1 holds every session: a /24 slice (253 addresses) is too small past 250 sessions.
# Give it 10.99.128.0/21 (2,046 addresses, inside the default pool) and room in its capacity,
# and route the new slice at the lan host.
if [ $((SESSIONS + OC)) -gt 250 ]; then
  for f in "$DIR"/*/node.toml; do
    sed -i 's|^pool = "10.99.1.0/24"|pool = "10.99.128.0/21"|; s|^capacity = 1000$|capacity = 4000|' "$f"
  done
  sed -i 's|^10.99.1.0/24 |10.99.128.0/21 |' "$DIR/lan/routes"
fi
"${CS[@]}" up >&2
for i in 1 2 3; do for _ in $(seq 120); do ready "$i" && break; sleep 1; done; done
for _ in $(seq 120); do [ "$(owner 2 2>/dev/null)" = 1 ] && break; sleep 1; done
PW=$(cat "$DIR/users/password")
PIN=$("${CS[@]}" pin)
client=$("${C[@]}" ps -q client)

# The openconnect clients: each on a tun of its own (ock), routed by its inner address
# (policy table 100+k), so that their split routes do not fight. The script logs every
# state change, as vpnc-script's hooks do in the compose test.
cx "cat > /run/oc-script" <<'EOF'
#!/bin/sh
k=${TUNDEV#oc}
echo "$(date +%s) $reason ${INTERNAL_IP4_ADDRESS:-}" >> /run/oc-$k.events
case "$reason" in
  connect)
    ip link set dev "$TUNDEV" up mtu "${INTERNAL_IP4_MTU:-1300}"
    ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
    ip rule add from "$INTERNAL_IP4_ADDRESS" table $((100 + k))
    ip route replace default dev "$TUNDEV" table $((100 + k)) ;;
esac
EOF
cx "chmod 755 /run/oc-script"
for k in $(seq "$OC"); do
  cxd "rm -f /run/oc-$k.*; echo \$\$ > /run/oc-$k.pid; echo '$PW' | exec openconnect \
      --protocol=anyconnect --timestamp --servercert $PIN -u demo --passwd-on-stdin --interface oc$k \
      --script /run/oc-script --reconnect-timeout 3600 https://$SLOT/ > /run/oc-$k.log 2>&1"
done
for k in $(seq "$OC"); do
  for _ in $(seq 60); do cx "grep -q ' connect ' /run/oc-$k.events 2>/dev/null" && break; sleep 1; done
  cx "grep -q ' connect ' /run/oc-$k.events" || { say "openconnect $k did not connect:"; cx "tail -20 /run/oc-$k.log" >&2; exit 1; }
done

echo "| fault | drills | gh-fleet sessions: blackout p50 / p99 / max ms | openconnect: blackout p50 / p99 / max ms | sessions before → after | lost | re-logins | not back | dual-owner probes |"
echo "|---|---|---|---|---|---|---|---|---|"
for fault in $FAULTS; do
  secs=$((180 + DRILLS * 40))
  cxd "echo \$\$ > /tmp/fleet.pid; FLEET_PROBE_MS=$PROBE_MS exec gh-fleet $SLOT:443 demo '$PW' $SESSIONS $secs 16 > /tmp/fleet.json 2> /tmp/fleet.err"
  for _ in $(seq 300); do
    docker cp "$client:/tmp/fleet.err" "$DIR/fleet.err" 2>/dev/null
    grep -q "attached=$SESSIONS " "$DIR/fleet.err" 2>/dev/null && break
    sleep 1
  done
  for k in $(seq "$OC"); do
    ip=$(cx "awk '\$2 == \"connect\" {print \$3}' /run/oc-$k.events | head -1")
    cxd "echo \$\$ > /run/ping-$k.pid; exec ping -n -D -i 0.01 -W 1 -I $ip $LAN > /run/ping-$k.txt 2>&1"
  done
  cxd "echo \$\$ > /tmp/arp.pid; exec gh-arp-probe eth0 $GATEHOUSE_NET_PUBLIC.50 $SLOT $secs > /tmp/arp.txt 2> /tmp/arp.err"
  sleep 1
  before=$(sessions)
  starts=()
  for d in $(seq "$DRILLS"); do
    o=$(slot_owner) || { say "slot 1 has no owner before $fault drill $d"; exit 1; }
    leader=$(leader "$o" || echo "?")
    tries=0
    while [ "$LEADER_OWNER" = 1 ] && [ "$leader" != "$o" ] && [ "$tries" -lt 12 ]; do
      # Restart the leader (gracefully: it hands its own slots over) until the owner wins.
      tries=$((tries + 1))
      case "$leader" in 1|2|3) docker restart -t 10 "${PROJECT}_gw${leader}_1" >/dev/null ;; *) sleep 1 ;; esac
      for i in 1 2 3; do for _ in $(seq 60); do ready "$i" && break; sleep 1; done; done
      sleep 2
      o=$(slot_owner) || { say "slot 1 has no owner before $fault drill $d"; exit 1; }
      leader=$(leader "$o" || echo "?")
    done
    cid=${PROJECT}_gw${o}_1
    starts+=("$(date +%s.%N)")
    case "$fault" in
      kill) docker kill "$cid" >/dev/null ;;
      stop) docker stop "$cid" >/dev/null ;;
      pause) docker pause "$cid" >/dev/null; sleep 3; docker unpause "$cid" >/dev/null ;;
      partition) partition "$PROJECT" "$cid" 3 ;;
      restart-all) "${C[@]}" restart gw1 gw2 gw3 >/dev/null 2>&1 ;;
      *) echo "compose-failover.sh: unknown fault $fault" >&2; exit 2 ;;
    esac
    # The slot moved (or, after restart-all, has an owner again); then the owner comes back.
    # The first look waits until the move is surely over: the polls cost CPU.
    sleep 2
    n=""
    for _ in $(seq 60); do
      for i in 1 2 3; do
        [ "$i" = "$o" ] && [ "$fault" != restart-all ] && continue
        n=$(owner "$i" 2>/dev/null) && break
      done
      [ -n "$n" ] && [ "$n" != null ] && { [ "$fault" = restart-all ] || [ "$n" != "$o" ]; } && break
      sleep 0.5
    done
    case "$fault" in kill|stop) docker start "$cid" >/dev/null ;; esac
    for i in 1 2 3; do for _ in $(seq 60); do ready "$i" && break; sleep 1; done; done
    for _ in $(seq 60); do
      docker cp "$client:/tmp/fleet.err" "$DIR/fleet.err" 2>/dev/null
      tail -1 "$DIR/fleet.err" | grep -q "attached=$SESSIONS " && break
      sleep 0.5
    done
    sleep "$SETTLE_S"
    socks=""
    for i in 1 2 3; do
      pid=$(docker inspect -f '{{.State.Pid}}' "${PROJECT}_gw${i}_1")
      socks+=" gw$i=$(nsenter -t "$pid" -n ss -Htan src "$SLOT" | grep -vc LISTEN || true)"
    done
    say "$fault drill $d/$DRILLS: gw$o (Raft leader: node $leader) -> gw$n; $(tail -1 "$DIR/fleet.err"); TCP connections on the slot address:$socks"
  done
  after=$(sessions)
  cx 'kill -INT $(read p < /tmp/fleet.pid; echo $p)' || true
  for _ in $(seq 60); do cx 'test -s /tmp/fleet.json' 2>/dev/null && break; sleep 1; done
  for k in $(seq "$OC"); do cx "kill -INT \$(cat /run/ping-$k.pid)" || true; done
  cx 'kill -INT $(cat /tmp/arp.pid)' || true
  sleep 0.5
  # Probes answered by two different hardware addresses; replies seen, to show it probed.
  arp_replies=$(cx 'wc -l < /tmp/arp.txt')
  dual=$(cx 'cat /tmp/arp.txt' | awk '{print $2, $3}' | sort -u | awk '{print $1}' | uniq -d | wc -l)
  docker cp "$client:/tmp/fleet.json" "$DIR/fleet.json"
  json=$(cat "$DIR/fleet.json")
  lost=$(jq -r '.lost' <<< "$json"); pending=$(jq -r '.pending' <<< "$json")
  # Per session and drill, its largest gap: from the last frame it heard before a drop (it
  # probes every PROBE_MS) to its re-attach, the re-attach falling in the drill.
  jq -r '.events[] | "\(.[0]) \(.[1]) \(.[2])"' <<< "$json" | sort -k2,2n | awk -v starts="${starts[*]}" '
    BEGIN { n = split(starts, s, " ") }
    { drop = $1 + 0; t = $2 + 0; id = $3
      for (i = n; i >= 1; i--) if (t >= s[i]) break
      if (i < 1) next
      k = id " " i; g = t - drop
      if (g > gap[k]) gap[k] = g }
    END { for (k in gap) { printf "%.0f\n", gap[k] * 1000; split(k, x, " "); if (gap[k] > m[x[2]]) m[x[2]] = gap[k] }
          for (i = 1; i <= n; i++) printf "drill %d: gh-fleet max %.0f ms\n", i, m[i] * 1000 > "/dev/stderr" }' > "$DIR/fleet-blackouts"
  k=$(wc -l < "$DIR/fleet-blackouts")
  r=$(jq '.events | length' <<< "$json")
  fleet_row="$(pcts "$DIR/fleet-blackouts") ($k of $((DRILLS * SESSIONS)) session-drills; $r re-attaches)"
  # openconnect: per client and drill, the largest gap between ping replies from the drill's
  # start to the next drill's.
  : > "$DIR/oc-blackouts"
  relogins=0
  for k in $(seq "$OC"); do
    cx "cat /run/ping-$k.txt" | awk -v k="$k" -v starts="${starts[*]}" '
      BEGIN { n = split(starts, s, " "); s[n + 1] = 1e12 }
      /bytes from/ { t = substr($1, 2, length($1) - 2) + 0
        if (prev) for (i = 1; i <= n; i++) if (t > s[i] && prev < s[i + 1] && t - prev > g[i]) g[i] = t - prev
        prev = t }
      END { for (i = 1; i <= n; i++) { printf "%.0f\n", g[i] * 1000
                                       printf "drill %d: openconnect %d gap %.0f ms\n", i, k, g[i] * 1000 > "/dev/stderr" } }' >> "$DIR/oc-blackouts"
    c=$(cx "grep -c ' connect ' /run/oc-$k.events || true")
    relogins=$((relogins + c - 1))
    cx "kill -0 \$(cat /run/oc-$k.pid)" || { say "openconnect $k exited:"; cx "tail -5 /run/oc-$k.log" >&2; lost=$((lost + 1)); }
  done
  oc_row="$(pcts "$DIR/oc-blackouts") ($OC × $DRILLS)"
  [ "$OC" = 0 ] && oc_row="–"
  echo "| $fault | $DRILLS | $fleet_row | $oc_row | $before → $after | $lost | $relogins | $pending | $dual (of $arp_replies replies) |"
  cx 'rm -f /tmp/fleet.json /tmp/fleet.err /tmp/fleet.pid /tmp/arp.txt /tmp/arp.pid' || true
done
