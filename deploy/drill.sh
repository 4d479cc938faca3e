#!/usr/bin/env bash
# drill.sh - a failover drill over every slot of the cluster, one after the other, run on any
# node (docs/failover.md). Prints each drill's report and fails (exit 1) if a drill fails, lost
# a session or made a client log in again.
#
#   deploy/drill.sh                 # graceful switch of every slot
#   deploy/drill.sh --kill          # crash each slot's owner (run it on a node that survives:
#                                   # slots this node owns are skipped); restart a crashed node
#                                   # yourself if you want it back before the next drill
#   PAUSE=10 deploy/drill.sh        # seconds between drills (default 5)
#   GATEHOUSECTL="gatehousectl --admin 127.0.0.1:8444"   # the command (and arguments) to run
#
# Needs jq (scripts/install-deps.sh installs it).
set -euo pipefail
MODE=--switch
case "${1:-}" in
  "") ;;
  --switch|--kill) MODE=$1 ;;
  *) echo "usage: drill.sh [--switch|--kill]" >&2; exit 2 ;;
esac
read -ra CTL <<< "${GATEHOUSECTL:-gatehousectl}"
PAUSE=${PAUSE:-5}
command -v jq >/dev/null || { echo "drill.sh: jq is needed to read gatehousectl --json" >&2; exit 2; }

view=$("${CTL[@]}" --json show failover)
ME=$(jq -r '.node_id' <<< "$view")
if [ "$MODE" = --kill ]; then
  SLOTS=$(jq -r --argjson me "$ME" '.slots[] | select(.owner != $me) | .id' <<< "$view")
else
  SLOTS=$(jq -r '.slots[].id' <<< "$view")
fi
[ -n "$SLOTS" ] || { echo "drill.sh: no slot to drill" >&2; exit 2; }

bad=0
for s in $SLOTS; do
  echo "== drill slot $s ($MODE) from node $ME"
  if ! out=$("${CTL[@]}" --json drill --slot "$s" "$MODE"); then
    echo "drill.sh: the drill of slot $s failed" >&2
    bad=1
    continue
  fi
  jq -r '"  node \(.from_node) -> node \(.to_node): takeover \(.takeover_ms) ms, blackout p50/p95/max \(.blackout_p50_ms)/\(.blackout_p95_ms)/\(.blackout_max_ms) ms, back \(.back)/\(.active_before), lost \(.sessions_lost), re-logins \(.relogins)"' <<< "$out"
  if [ "$(jq '.sessions_lost + .relogins' <<< "$out")" != 0 ]; then
    bad=1
  fi
  sleep "$PAUSE"
done
if [ "$bad" = 0 ]; then
  echo "drill.sh: every drill passed (0 sessions lost, 0 re-logins)"
else
  echo "drill.sh: some drills FAILED" >&2
fi
exit "$bad"
